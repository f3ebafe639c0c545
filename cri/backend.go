package cri

import (
	"context"
	"io"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Backends are the packages the CRI service delegates to, each behind the
// small interface this package needs. Errors they return should wrap an
// errdefs kind (the adapters in cmd/podvisor translate their packages'
// kinds); an error without a kind becomes codes.Unknown.
type Backends struct {
	VMs     VMRuntime
	Images  ImageStore
	Network Network
	Logs    LogOpener
	// Features are what the host supports, probed at start-up.
	Features HostFeatures
	// Streams serves exec/attach/port-forward URLs. It is set after New,
	// with SetStreamServer, because the stream server calls back into the
	// Service (see StreamBackend).
	Streams StreamServer
}

// HostFeatures are the optional mechanisms that work on this host.
type HostFeatures struct {
	// UserNamespaces: pods may have a user namespace (userns_options mode
	// POD), i.e. the host can ID-map the image layers of their rootfs.
	UserNamespaces bool
	// RootfsDir is the host directory under which containers' rootfs
	// mounts live (verbose Status reports it as stateDir).
	RootfsDir string
}

// ---- pod VMs (podvm) ----

// VMRuntime boots pod VMs and finds the ones that survived a daemon
// restart.
type VMRuntime interface {
	// Boot boots the VM of a sandbox. The VM must outlive ctx: ctx only
	// bounds the boot.
	Boot(ctx context.Context, spec VMSpec) (PodVM, error)
	// Reattach returns the running VM of sandboxID after a daemon restart;
	// a VM that is gone is errdefs.ErrNotFound.
	Reattach(ctx context.Context, sandboxID string) (PodVM, error)
	// RemoveOthers stops and removes every VM, and its host state, that
	// belongs to none of the sandboxes in keep: what a boot interrupted by
	// a crash left behind.
	RemoveOthers(ctx context.Context, keep []string) error
}

// VMSpec is what a pod VM is booted with.
type VMSpec struct {
	SandboxID string
	VCPUs     int
	MemoryMiB int
	Hostname  string
	// Network is what Network.Setup returned; the VM adapter passes it to
	// the VMM (tap devices) and the guest (interfaces, routes).
	Network PodNetwork
	DNS     *DNSConfig
	// Sysctls are the pod's namespaced sysctls, applied in the guest.
	Sysctls map[string]string
	// LogDirectory is the pod's log directory on the host ("" if none).
	LogDirectory string
}

// DNSConfig is the pod's resolv.conf content.
type DNSConfig struct {
	Servers, Searches, Options []string
}

// PodVM is one booted pod VM.
type PodVM interface {
	GuestFiles
	GuestContainers
	// Done is closed when the VM is gone (VMM exited, agent lost).
	Done() <-chan struct{}
	// Stop powers the VM off and removes its host state; idempotent.
	Stop(ctx context.Context) error
	// DialPort connects to port on the guest's loopback (port-forward).
	DialPort(ctx context.Context, port int32) (io.ReadWriteCloser, error)
	// PodPIDNamespace returns the guest PID of the holder of the pod's
	// shared PID namespace (started on first use; the same while it runs).
	// For a pod with a user namespace, userns is its mapping and the
	// holder also holds the pod's user namespace and the IPC namespace it
	// owns; the zero IDMapping is none.
	PodPIDNamespace(ctx context.Context, userns IDMapping) (int, error)
}

// IDMapping is a pod user namespace's mapping, one range of UIDs and one of
// GIDs (what kubelet sends); the outside IDs are guest IDs. The zero value
// is no user namespace.
type IDMapping struct {
	UID, GID IDRange
}

// IDRange maps Size IDs from ContainerID inside to HostID outside.
type IDRange struct {
	ContainerID, HostID, Size uint32
}

// RootfsOptions are how a container's rootfs is assembled.
type RootfsOptions struct {
	// ReadOnly is the container's readonly_rootfs.
	ReadOnly bool
	// Userns is the pod's user namespace mapping: its root must own the
	// rootfs (ID-mapped layers, upper directory owned by it).
	Userns IDMapping
}

// GuestFiles exposes host files to the guest through the pod's shared
// directory. Paths returned are guest paths for the OCI spec.
type GuestFiles interface {
	// PrepareRootfs assembles a container's rootfs from the image's layer
	// directories (lowest first) and returns its guest path.
	PrepareRootfs(ctx context.Context, containerID string, layerDirs []string, opts RootfsOptions) (guestPath string, err error)
	// ShareHostPath exposes a host file or directory (a CRI mount's
	// host_path, symlinks already resolved) to a container and returns its
	// guest path.
	// readOnly applies to the top mount, recursive to every mount below.
	// submounts are the mount points below hostPath the share carries,
	// relative to it, parents first.
	ShareHostPath(ctx context.Context, containerID, hostPath string, readOnly, recursive bool) (guestPath string, submounts []string, err error)
	// ShareImage exposes an image's file tree (its layer directories,
	// base first) read-only to a container (an image volume) and returns
	// the guest path of subPath inside it ("" for the root). A subPath
	// that does not exist in the image is errdefs.ErrInvalidArgument.
	ShareImage(ctx context.Context, containerID string, layerDirs []string, subPath string) (guestPath string, err error)
	// ReleaseContainerFiles removes the container's rootfs and shares;
	// idempotent.
	ReleaseContainerFiles(ctx context.Context, containerID string) error
}

// GuestContainers runs containers (runc in the guest) from OCI specs.
type GuestContainers interface {
	// CreateContainer creates the container; the returned Process is its
	// init process, waiting for StartContainer.
	CreateContainer(ctx context.Context, spec ContainerSpec) (Process, error)
	StartContainer(ctx context.Context, containerID string) error
	// Process re-opens a container's init process after a daemon restart.
	Process(ctx context.Context, containerID string) (Process, error)
	Exec(ctx context.Context, containerID string, spec ExecSpec) (Process, error)
	// DeleteContainer kills (if needed) and deletes it; unknown → success.
	DeleteContainer(ctx context.Context, containerID string) error
	UpdateContainerResources(ctx context.Context, containerID string, res *specs.LinuxResources) error
	ContainerStats(ctx context.Context, containerID string) (ContainerStats, error)
}

// ContainerSpec describes a container to create in the guest.
type ContainerSpec struct {
	ID   string
	Spec *specs.Spec
	// Which stdio streams to connect; with Spec.Process.Terminal, Stdout
	// carries the terminal and Stderr is unused.
	Stdin, Stdout, Stderr bool
}

// ExecSpec describes a process to run in a running container.
type ExecSpec struct {
	ID                    string
	Process               *specs.Process
	Stdin, Stdout, Stderr bool
}

// Process is a process in the guest: a container's init or an exec.
type Process interface {
	// PID is the process's pid in the guest.
	PID() int
	// Stdin/Stdout/Stderr are nil unless requested.
	Stdin() io.WriteCloser
	Stdout() io.ReadCloser
	Stderr() io.ReadCloser
	Wait(ctx context.Context) (ExitStatus, error)
	Signal(ctx context.Context, sig syscall.Signal) error
	Resize(ctx context.Context, rows, cols uint16) error
	// Remove forgets an exited process and closes its streams.
	Remove(ctx context.Context) error
}

// ExitStatus is how a process ended.
type ExitStatus struct {
	Code     int
	Signal   syscall.Signal
	OOMKill  bool
	Started  time.Time
	Finished time.Time
}

// ContainerStats are a container's cgroup counters in the guest.
type ContainerStats struct {
	Timestamp        time.Time
	CPUUsage         time.Duration
	MemoryUsage      uint64
	MemoryWorkingSet uint64
	MemoryRSS        uint64
	PIDs             uint64
	// WritableLayerBytes is the size of the container's upper dir.
	WritableLayerBytes uint64

	// The groups below feed the cAdvisor-style metrics of
	// ListPodSandboxMetrics. A backend fills a group only when it read
	// every field of it; a nil group leaves its metrics out instead of
	// reporting zeros that were never measured.
	CPU       *CPUStats
	Memory    *MemoryStats
	Processes *ProcessStats
}

// CPUStats are the container cgroup's cpu.stat counters.
type CPUStats struct {
	User, System time.Duration // user_usec, system_usec
	// Periods, ThrottledPeriods and ThrottledTime are nr_periods,
	// nr_throttled and throttled_usec (zero without a CPU limit).
	Periods, ThrottledPeriods uint64
	ThrottledTime             time.Duration
}

// MemoryStats are the container cgroup's memory counters.
type MemoryStats struct {
	Cache      uint64 // memory.stat file
	Kernel     uint64 // memory.stat kernel
	MappedFile uint64 // memory.stat file_mapped
	Swap       uint64 // memory.swap.current
	MaxUsage   uint64 // memory.peak
	// LimitHits counts the times usage hit the limit (memory.events max).
	LimitHits uint64
	// PageFaults and MajorPageFaults are memory.stat pgfault and
	// pgmajfault.
	PageFaults, MajorPageFaults uint64
	// OOMEvents is memory.events oom_kill.
	OOMEvents uint64
}

// ProcessStats count what the container's processes hold.
type ProcessStats struct {
	Threads    uint64 // tasks in cgroup.threads
	ThreadsMax uint64 // pids.max; 0 is unlimited
	// FileDescriptors and Sockets are the open fds (and the socket fds
	// among them) of the processes in cgroup.procs.
	FileDescriptors, Sockets uint64
}

// ---- images (image) ----

// ImageStore is the host's image store.
type ImageStore interface {
	// Pull pulls ref (normalized by the store) with optional credentials.
	Pull(ctx context.Context, ref string, auth *RegistryAuth) (Image, error)
	// Get finds an image by reference, ID or unique ID prefix; none is
	// errdefs.ErrNotFound.
	Get(ctx context.Context, refOrID string) (Image, error)
	List(ctx context.Context) ([]Image, error)
	// Remove removes the image and all its references; none → ErrNotFound.
	Remove(ctx context.Context, refOrID string) error
	FsInfo(ctx context.Context) (FsUsage, error)
	// LayerDirs are the image's unpacked layers, base first.
	LayerDirs(ctx context.Context, img Image) ([]string, error)
	// ResolveUser resolves "user[:group]" (names or numbers) against the
	// image's /etc/passwd and /etc/group.
	ResolveUser(ctx context.Context, img Image, user string) (uid, gid uint32, groups []uint32, err error)
}

// RegistryAuth are credentials from a PullImageRequest.
type RegistryAuth struct {
	Username, Password, Auth, ServerAddress, IdentityToken, RegistryToken string
}

// Image is what the store knows about one image.
type Image struct {
	ID          string
	RepoTags    []string
	RepoDigests []string
	Size        uint64
	Pinned      bool
	Config      ImageConfig
}

// ImageConfig is the runtime part of an image config.
type ImageConfig struct {
	User       string
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	StopSignal string
	Volumes    []string
	Labels     map[string]string
}

// FsUsage is the image filesystem's usage.
type FsUsage struct {
	Mountpoint string
	UsedBytes  uint64
	InodesUsed uint64
	Timestamp  time.Time
}

// ---- networking (network) ----

// Network sets up pod networks.
type Network interface {
	Setup(ctx context.Context, req NetworkRequest) (PodNetwork, error)
	// Teardown removes the pod's network; unknown → success.
	Teardown(ctx context.Context, sandboxID string) error
	// RemoveOthers tears down every pod network that belongs to none of
	// the sandboxes in keep.
	RemoveOthers(ctx context.Context, keep []string) error
	// Status is nil when pod networking is ready, else the reason.
	Status(ctx context.Context) error
}

// NetworkRequest describes a pod for CNI.
type NetworkRequest struct {
	SandboxID, Name, Namespace, UID, Hostname string
	PortMappings                              []*runtime.PortMapping
	DNS                                       *DNSConfig
}

// NetworkStatsReader is implemented by a Network that can count a pod's
// traffic. It is optional (the service asserts it): without it, pod
// network usage and the container_network_* metrics are left out. The
// counters should come from the host side (the pod's interfaces in its
// network namespace), not from the guest, which is not trusted to report
// its own traffic.
type NetworkStatsReader interface {
	// NetworkStats returns the counters of the pod's interfaces, the
	// default (primary) interface first; an unknown sandbox is
	// errdefs.ErrNotFound.
	NetworkStats(ctx context.Context, sandboxID string) ([]InterfaceStats, error)
}

// InterfaceStats are one pod interface's counters, as seen from inside the
// pod (receive = traffic to the pod).
type InterfaceStats struct {
	Name                                    string
	RxBytes, RxPackets, RxErrors, RxDropped uint64
	TxBytes, TxPackets, TxErrors, TxDropped uint64
}

// PodNetwork is a pod's network as set up. Only the VM adapter looks
// further into it (taps, guest interface config): that adapter and the
// network adapter are wired together in cmd/podvisor.
type PodNetwork interface {
	NetNSPath() string
	// IPs are the pod IPs, primary first.
	IPs() []string
}

// ---- container logs (cri/logs) ----

// LogOpener opens container log files.
type LogOpener interface {
	Open(path string) (LogWriter, error)
}

// LogWriter writes one container's CRI log file.
type LogWriter interface {
	// Run copies stdout and stderr (either may be nil) until both end,
	// then closes the writer.
	Run(stdout, stderr io.Reader) error
	// Reopen reopens the file after kubelet rotated it.
	Reopen() error
}

// ---- streaming (cri/streaming) ----

// StreamServer returns the URLs kubelet hands to clients for exec, attach
// and port-forward; requests are validated before it is called.
type StreamServer interface {
	GetExec(*runtime.ExecRequest) (*runtime.ExecResponse, error)
	GetAttach(*runtime.AttachRequest) (*runtime.AttachResponse, error)
	GetPortForward(*runtime.PortForwardRequest) (*runtime.PortForwardResponse, error)
}
