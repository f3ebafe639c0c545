// Package hypervisor owns the virtual machine monitors that run pod VMs. It
// defines one small driver interface; each VMM (Cloud Hypervisor, QEMU) lives in
// its own sub-package and knows nothing of CRI, networking or images.
package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// Error kinds returned by drivers, wrapped with context by the caller.
var (
	// ErrInvalidConfig: the Config failed validation; nothing was started.
	ErrInvalidConfig = errors.New("invalid VM config")
	// ErrNotRunning: the VMM process is gone.
	ErrNotRunning = errors.New("VMM not running")
	// ErrUnsupported: the driver cannot do what was asked.
	ErrUnsupported = errors.New("not supported by this VMM")
)

// Driver launches VMs of one VMM kind. Implementations must be safe for
// concurrent use.
type Driver interface {
	// Name is the driver's short name ("qemu", "cloud-hypervisor").
	Name() string
	// Launch validates cfg, starts the VMM process in its own session and
	// boots the guest. It returns once the VMM reports the guest running; the
	// guest agent may still be starting. On error nothing is left running and
	// every file the driver created under cfg.StateDir is removed.
	Launch(ctx context.Context, cfg Config) (VM, error)
	// Reattach rebuilds a handle for a VM launched by an earlier daemon
	// process from the State that VM reported. It fails with ErrNotRunning
	// when the VMM process is gone.
	Reattach(ctx context.Context, st State) (VM, error)
}

// VM is a running virtual machine.
type VM interface {
	// State is what a later daemon needs to Reattach; callers persist it.
	State() State
	// DialAgent opens a new byte stream to the guest agent's port. Each call
	// returns an independent connection; the previous one must be closed
	// first on transports that carry only one (virtio-serial).
	DialAgent(ctx context.Context) (net.Conn, error)
	// AddDevice hot-plugs a disk or a NIC.
	AddDevice(ctx context.Context, dev Device) error
	// RemoveDevice hot-unplugs the device with the given ID.
	RemoveDevice(ctx context.Context, id string) error
	// Stop asks the VMM to shut the VM down and waits for the VMM process to
	// exit. When ctx ends first the process is killed. Stopping a VM that
	// already exited returns nil.
	Stop(ctx context.Context) error
	// Release lets go of the VM without stopping it: API connections are
	// closed so that another process (a restarted daemon) can Reattach.
	// The handle is unusable afterwards.
	Release() error
	// Done is closed once the VMM process has exited.
	Done() <-chan struct{}
	// Err reports why the VMM exited; nil while it runs or after Stop.
	Err() error
}

// Config describes one VM. Every path is absolute; StateDir is private to
// this VM (mode 0700, created by the caller) and holds its sockets and logs.
type Config struct {
	ID       string
	StateDir string

	Kernel     string
	Initramfs  string
	KernelArgs []string

	VCPUs     int
	MemoryMiB int

	// SharedFS, when set, is exposed to the guest as a virtio-fs device.
	SharedFS *SharedFS
	// NICs are attached at boot.
	NICs []NIC
	// NetNSPath, when set, is the network namespace the VMM process runs in
	// (the taps of NICs live there).
	NetNSPath string

	// User and Group, when non-zero, are the credentials the VMM process
	// runs with. StateDir must be owned by them.
	User, Group uint32
	// Groups are supplementary groups of the VMM process, e.g. the group
	// owning /dev/kvm.
	Groups []uint32

	// ConsoleLog receives the guest's serial console; empty discards it.
	ConsoleLog string
	// KVM selects hardware virtualization; false means software emulation
	// (drivers that need KVM reject it).
	KVM bool
}

// SharedFS is a vhost-user-fs backend (virtiofsd) already listening.
type SharedFS struct {
	Tag    string // mount tag the guest uses
	Socket string // vhost-user socket path
}

// NIC is a network interface backed by an open tap device.
type NIC struct {
	ID  string
	MAC net.HardwareAddr
	MTU int
	// Tap is the open tap device (one queue). The driver hands it to the
	// VMM; the caller keeps ownership and closes it after Launch/AddDevice.
	Tap *os.File
}

// Disk is a block device backed by a host file.
type Disk struct {
	ID       string
	Path     string
	ReadOnly bool
}

// Device is a hot-pluggable device: exactly one of Disk and NIC is set.
type Device struct {
	Disk *Disk
	NIC  *NIC
}

// State is the serialisable identity of a running VM.
type State struct {
	Driver    string            `json:"driver"`
	ID        string            `json:"id"`
	PID       int               `json:"pid"`
	StartTime uint64            `json:"startTime"` // /proc/<pid>/stat field 22, guards against PID reuse
	StateDir  string            `json:"stateDir"`
	Extra     map[string]string `json:"extra,omitempty"`
}

// Validate checks the parts of cfg every driver relies on.
func (c *Config) Validate() error {
	switch {
	case c.ID == "":
		return fmt.Errorf("%w: empty ID", ErrInvalidConfig)
	case c.StateDir == "":
		return fmt.Errorf("%w: empty StateDir", ErrInvalidConfig)
	case c.Kernel == "":
		return fmt.Errorf("%w: empty Kernel", ErrInvalidConfig)
	case c.VCPUs < 1 || c.VCPUs > 64:
		return fmt.Errorf("%w: VCPUs %d out of range 1-64", ErrInvalidConfig, c.VCPUs)
	case c.MemoryMiB < 64 || c.MemoryMiB > 256*1024:
		return fmt.Errorf("%w: MemoryMiB %d out of range 64-262144", ErrInvalidConfig, c.MemoryMiB)
	}
	for i, n := range c.NICs {
		if n.Tap == nil || len(n.MAC) != 6 || n.ID == "" {
			return fmt.Errorf("%w: NICs[%d] needs ID, a 6-byte MAC and a tap", ErrInvalidConfig, i)
		}
	}
	if c.SharedFS != nil && (c.SharedFS.Tag == "" || c.SharedFS.Socket == "") {
		return fmt.Errorf("%w: SharedFS needs Tag and Socket", ErrInvalidConfig)
	}
	return nil
}

// DefaultStopTimeout bounds a graceful VMM shutdown before it is killed.
const DefaultStopTimeout = 10 * time.Second
