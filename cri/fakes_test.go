package cri

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
)

// Hand-written fakes of the backends, with …Fn hooks for failures.

type fakeVMs struct {
	mu       sync.Mutex
	vms      map[string]*fakeVM
	boots    int
	BootFn   func(ctx context.Context, spec VMSpec) error
	lostOnRe bool // Reattach reports every VM gone
}

func newFakeVMs() *fakeVMs { return &fakeVMs{vms: map[string]*fakeVM{}} }

func (f *fakeVMs) Boot(ctx context.Context, spec VMSpec) (PodVM, error) {
	if f.BootFn != nil {
		if err := f.BootFn(ctx, spec); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.boots++
	vm := &fakeVM{spec: spec, done: make(chan struct{}), procs: map[string]*fakeProc{}, containers: map[string]*specs.Spec{}}
	f.vms[spec.SandboxID] = vm
	return vm, nil
}

func (f *fakeVMs) Reattach(_ context.Context, id string) (PodVM, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	vm, ok := f.vms[id]
	if !ok || f.lostOnRe {
		return nil, fmt.Errorf("vm %s: %w", id, errdefs.ErrNotFound)
	}
	return vm, nil
}

func (f *fakeVMs) RemoveOthers(_ context.Context, keep []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, vm := range f.vms {
		if !slices.Contains(keep, id) {
			vm.Stop(context.Background())
			delete(f.vms, id)
		}
	}
	return nil
}

func (f *fakeVMs) get(id string) *fakeVM {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.vms[id]
}

type fakeVM struct {
	spec       VMSpec
	mu         sync.Mutex
	done       chan struct{}
	stopped    bool
	procs      map[string]*fakeProc
	containers map[string]*specs.Spec
	released   []string
	resources  map[string]*specs.LinuxResources // last update per container
	// userns records PodPIDNamespace's mappings, rootfs PrepareRootfs's
	// options by container.
	userns   []IDMapping
	rootfs   map[string]RootfsOptions
	shares   []fakeShare // ShareHostPath calls
	CreateFn func(ContainerSpec) error
	StartFn  func(ctx context.Context, id string) error
	ExecFn   func(*fakeProc, ExecSpec)
	StatsFn  func(id string) (ContainerStats, error)
	StopErr  error // returned (once) by Stop
}

func (v *fakeVM) Done() <-chan struct{} { return v.done }
func (v *fakeVM) Stop(context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.StopErr; err != nil {
		v.StopErr = nil
		return err
	}
	if !v.stopped {
		v.stopped = true
		close(v.done)
		for _, p := range v.procs {
			p.exit(ExitStatus{Code: 137, Signal: syscall.SIGKILL})
		}
	}
	return nil
}

// PodPIDNamespace returns the same holder PID for the VM's life.
func (v *fakeVM) PodPIDNamespace(_ context.Context, userns IDMapping) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.userns = append(v.userns, userns)
	return 4242, nil
}

func (v *fakeVM) DialPort(context.Context, int32) (io.ReadWriteCloser, error) {
	return nil, errdefs.ErrUnimplemented
}
func (v *fakeVM) PrepareRootfs(_ context.Context, id string, layers []string, opts RootfsOptions) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.rootfs == nil {
		v.rootfs = map[string]RootfsOptions{}
	}
	v.rootfs[id] = opts
	return "/run/podvisor/shared/containers/" + id + "/rootfs", nil
}

// fakeShare is one ShareHostPath call.
type fakeShare struct {
	host          string
	ro, recursive bool
}

// ShareHostPath reports a submount "sub" for host paths ending in "-with-sub".
func (v *fakeVM) ShareHostPath(_ context.Context, id, host string, ro, recursive bool) (string, []string, error) {
	v.mu.Lock()
	v.shares = append(v.shares, fakeShare{host, ro, recursive})
	v.mu.Unlock()
	var subs []string
	if strings.HasSuffix(host, "-with-sub") {
		subs = []string{"sub"}
	}
	return filepath.Join("/run/podvisor/shared/mounts", id, host), subs, nil
}

// ShareImage fails for the sub-path "missing", as for a sub-path the image
// does not have.
func (v *fakeVM) ShareImage(_ context.Context, id string, layers []string, subPath string) (string, error) {
	if subPath == "missing" {
		return "", fmt.Errorf("sub-path %q: %w", subPath, errdefs.ErrInvalidArgument)
	}
	return filepath.Join("/run/podvisor/shared/images", id, layers[len(layers)-1], subPath), nil
}
func (v *fakeVM) ReleaseContainerFiles(_ context.Context, id string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.released = append(v.released, id)
	return nil
}
func (v *fakeVM) CreateContainer(_ context.Context, cs ContainerSpec) (Process, error) {
	if v.CreateFn != nil {
		if err := v.CreateFn(cs); err != nil {
			return nil, err
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	p := newFakeProc(len(v.procs) + 10)
	v.procs[cs.ID] = p
	v.containers[cs.ID] = cs.Spec
	return p, nil
}
func (v *fakeVM) StartContainer(ctx context.Context, id string) error {
	if v.StartFn != nil {
		if err := v.StartFn(ctx, id); err != nil {
			return err
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	p, ok := v.procs[id]
	if !ok {
		return fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
	}
	p.started = true
	return nil
}
func (v *fakeVM) Process(_ context.Context, id string) (Process, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	p, ok := v.procs[id]
	if !ok {
		return nil, fmt.Errorf("process %s: %w", id, errdefs.ErrNotFound)
	}
	return p, nil
}
func (v *fakeVM) Exec(_ context.Context, _ string, es ExecSpec) (Process, error) {
	p := newFakeProc(99)
	if v.ExecFn != nil {
		go v.ExecFn(p, es)
	}
	return p, nil
}
func (v *fakeVM) DeleteContainer(_ context.Context, id string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if p, ok := v.procs[id]; ok {
		p.exit(ExitStatus{Code: 137, Signal: syscall.SIGKILL})
	}
	delete(v.procs, id)
	delete(v.containers, id)
	return nil
}
func (v *fakeVM) UpdateContainerResources(_ context.Context, id string, res *specs.LinuxResources) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.resources == nil {
		v.resources = map[string]*specs.LinuxResources{}
	}
	v.resources[id] = res
	return nil
}
func (v *fakeVM) ContainerStats(_ context.Context, id string) (ContainerStats, error) {
	if v.StatsFn != nil {
		return v.StatsFn(id)
	}
	return ContainerStats{Timestamp: time.Now(), CPUUsage: time.Second, MemoryWorkingSet: 4096}, nil
}
func (v *fakeVM) proc(id string) *fakeProc {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.procs[id]
}

// fakeProc exits when signalled (SIGTERM exits unless ignoreTerm) or when
// exit is called.
type fakeProc struct {
	pid        int
	started    bool
	ignoreTerm bool
	once       sync.Once
	exited     chan struct{}
	status     ExitStatus
	outR, errR *io.PipeReader
	outW, errW *io.PipeWriter
	mu         sync.Mutex
	signals    []syscall.Signal
}

func newFakeProc(pid int) *fakeProc {
	p := &fakeProc{pid: pid, exited: make(chan struct{})}
	p.outR, p.outW = io.Pipe()
	p.errR, p.errW = io.Pipe()
	return p
}

func (p *fakeProc) exit(es ExitStatus) {
	p.once.Do(func() {
		p.status = es
		p.outW.Close()
		p.errW.Close()
		close(p.exited)
	})
}

func (p *fakeProc) PID() int                                     { return p.pid }
func (p *fakeProc) Stdin() io.WriteCloser                        { return nil }
func (p *fakeProc) Stdout() io.ReadCloser                        { return p.outR }
func (p *fakeProc) Stderr() io.ReadCloser                        { return p.errR }
func (p *fakeProc) Remove(context.Context) error                 { return nil }
func (p *fakeProc) Resize(context.Context, uint16, uint16) error { return nil }
func (p *fakeProc) Wait(ctx context.Context) (ExitStatus, error) {
	select {
	case <-p.exited:
		return p.status, nil
	case <-ctx.Done():
		return ExitStatus{}, ctx.Err()
	}
}
func (p *fakeProc) Signal(_ context.Context, sig syscall.Signal) error {
	p.mu.Lock()
	p.signals = append(p.signals, sig)
	p.mu.Unlock()
	if sig == syscall.SIGTERM && p.ignoreTerm {
		return nil
	}
	p.exit(ExitStatus{Signal: sig, Finished: time.Now()})
	return nil
}

type fakeImages struct {
	mu     sync.Mutex
	images map[string]Image // by ref and ID
	PullFn func(ref string) error
}

func newFakeImages() *fakeImages {
	busybox := Image{ID: "sha256:" + fmt.Sprintf("%064x", 1), RepoTags: []string{"docker.io/library/busybox:latest"},
		RepoDigests: []string{"docker.io/library/busybox@sha256:" + fmt.Sprintf("%064x", 2)}, Size: 1000,
		Config: ImageConfig{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}, User: "1000", StopSignal: "SIGQUIT"}}
	return &fakeImages{images: map[string]Image{"busybox": busybox, busybox.ID: busybox}}
}

func (f *fakeImages) Pull(_ context.Context, ref string, _ *RegistryAuth) (Image, error) {
	if f.PullFn != nil {
		if err := f.PullFn(ref); err != nil {
			return Image{}, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	img := Image{ID: "sha256:" + fmt.Sprintf("%064x", len(ref)+100), RepoTags: []string{ref}}
	f.images[ref], f.images[img.ID] = img, img
	return img, nil
}
func (f *fakeImages) Get(_ context.Context, ref string) (Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	img, ok := f.images[ref]
	if !ok {
		return Image{}, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
	}
	return img, nil
}
func (f *fakeImages) List(context.Context) ([]Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[string]bool{}
	var out []Image
	for _, img := range f.images {
		if !seen[img.ID] {
			seen[img.ID] = true
			out = append(out, img)
		}
	}
	return out, nil
}
func (f *fakeImages) Remove(_ context.Context, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	img, ok := f.images[ref]
	if !ok {
		return fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
	}
	for k, v := range f.images {
		if v.ID == img.ID {
			delete(f.images, k)
		}
	}
	return nil
}
func (f *fakeImages) FsInfo(context.Context) (FsUsage, error) {
	return FsUsage{Mountpoint: "/var/lib/podvisor/images", UsedBytes: 42, Timestamp: time.Now()}, nil
}
func (f *fakeImages) LayerDirs(context.Context, Image) ([]string, error) {
	return []string{"/var/lib/podvisor/images/layers/a"}, nil
}
func (f *fakeImages) ResolveUser(_ context.Context, _ Image, user string) (uint32, uint32, []uint32, error) {
	var uid, gid uint32
	if n, _ := fmt.Sscanf(user, "%d:%d", &uid, &gid); n == 1 {
		gid = uid
	}
	return uid, gid, []uint32{uid + 1}, nil
}

type fakeNet struct {
	mu        sync.Mutex
	setups    map[string]bool
	teardowns int
	StatusErr error
	SetupFn   func(NetworkRequest) error
	// Ifaces are what NetworkStats reports for every pod set up.
	Ifaces []InterfaceStats
}

var _ NetworkStatsReader = (*fakeNet)(nil)

// netOnly hides fakeNet's NetworkStats: a network backend that does not
// count traffic.
type netOnly struct{ Network }

type fakePodNet struct{ id string }

func (n fakePodNet) NetNSPath() string { return "/run/podvisor/netns/" + n.id }
func (n fakePodNet) IPs() []string     { return []string{"10.88.0.2", "fd00::2"} }

func (f *fakeNet) Setup(_ context.Context, r NetworkRequest) (PodNetwork, error) {
	if f.SetupFn != nil {
		if err := f.SetupFn(r); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setups == nil {
		f.setups = map[string]bool{}
	}
	f.setups[r.SandboxID] = true
	return fakePodNet{r.SandboxID}, nil
}
func (f *fakeNet) Teardown(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.setups, id)
	f.teardowns++
	return nil
}
func (f *fakeNet) RemoveOthers(_ context.Context, keep []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range f.setups {
		if !slices.Contains(keep, id) {
			delete(f.setups, id)
			f.teardowns++
		}
	}
	return nil
}
func (f *fakeNet) Status(context.Context) error { return f.StatusErr }
func (f *fakeNet) NetworkStats(_ context.Context, id string) ([]InterfaceStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.setups[id] {
		return nil, fmt.Errorf("pod network %s: %w", id, errdefs.ErrNotFound)
	}
	return f.Ifaces, nil
}
func (f *fakeNet) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.setups)
}

type fakeLogs struct {
	mu      sync.Mutex
	writers map[string]*fakeLog
}

type fakeLog struct {
	mu      sync.Mutex
	data    []byte
	reopens int
	done    chan struct{}
}

func (f *fakeLogs) Open(path string) (LogWriter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.writers == nil {
		f.writers = map[string]*fakeLog{}
	}
	w := &fakeLog{done: make(chan struct{})}
	f.writers[path] = w
	return w, nil
}
func (l *fakeLog) Run(stdout, stderr io.Reader) error {
	defer close(l.done)
	var wg sync.WaitGroup
	for _, r := range []io.Reader{stdout, stderr} {
		if r == nil {
			continue
		}
		wg.Go(func() {
			b, _ := io.ReadAll(r)
			l.mu.Lock()
			l.data = append(l.data, b...)
			l.mu.Unlock()
		})
	}
	wg.Wait()
	return nil
}
func (l *fakeLog) Reopen() error { l.mu.Lock(); l.reopens++; l.mu.Unlock(); return nil }

type fakeStreams struct{}

func (fakeStreams) GetExec(r *runtime.ExecRequest) (*runtime.ExecResponse, error) {
	return &runtime.ExecResponse{Url: "http://127.0.0.1:1/exec/" + r.ContainerId}, nil
}
func (fakeStreams) GetAttach(r *runtime.AttachRequest) (*runtime.AttachResponse, error) {
	return &runtime.AttachResponse{Url: "http://127.0.0.1:1/attach/" + r.ContainerId}, nil
}
func (fakeStreams) GetPortForward(r *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	return &runtime.PortForwardResponse{Url: "http://127.0.0.1:1/pf/" + r.PodSandboxId}, nil
}

// env is a service over fakes with its directories.
type env struct {
	t      testing.TB
	s      *Service
	vms    *fakeVMs
	images *fakeImages
	net    *fakeNet
	logs   *fakeLogs
	paths  Paths
	// network, if set, is the Network backend instead of net.
	network Network
	// config, if set, changes the default configuration.
	config func(*Config)
	// features are the host's (user namespaces supported by default).
	features HostFeatures
}

func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, vms: newFakeVMs(), images: newFakeImages(), net: &fakeNet{}, logs: &fakeLogs{},
		paths:    Paths{Root: filepath.Join(dir, "root"), State: filepath.Join(dir, "state")},
		features: HostFeatures{UserNamespaces: true, RootfsDir: filepath.Join(dir, "state", "pods")}}
	e.open()
	return e
}

func (e *env) open() {
	e.t.Helper()
	var network Network = e.net
	if e.network != nil {
		network = e.network
	}
	cfg := DefaultConfig()
	if e.config != nil {
		e.config(&cfg)
	}
	s, err := New(context.Background(), cfg, e.paths, Backends{VMs: e.vms, Images: e.images, Network: network, Logs: e.logs, Streams: fakeStreams{}, Features: e.features})
	if err != nil {
		e.t.Fatal(err)
	}
	e.s = s
	e.t.Cleanup(func() { s.Close() })
}

// reopen simulates a daemon restart: close and open the service on the
// same directories.
func (e *env) reopen() {
	e.t.Helper()
	e.s.Close()
	e.open()
}

func podConfig(name string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: name, Namespace: "default", Uid: "uid-" + name},
		Labels:       map[string]string{"app": name},
		Annotations:  map[string]string{"a": "b"},
		LogDirectory: "/var/log/pods/" + name,
	}
}

func (e *env) runPod(name string) string {
	e.t.Helper()
	r, err := e.s.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: podConfig(name)})
	if err != nil {
		e.t.Fatalf("RunPodSandbox: %v", err)
	}
	return r.PodSandboxId
}

func ctrConfig(name string) *runtime.ContainerConfig {
	return &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name},
		Image:    &runtime.ImageSpec{Image: "busybox"},
		Labels:   map[string]string{"ctr": name},
		LogPath:  name + ".log",
		Linux:    &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{}},
	}
}

func (e *env) createCtr(podID, name string) string {
	e.t.Helper()
	r, err := e.s.CreateContainer(context.Background(), &runtime.CreateContainerRequest{PodSandboxId: podID, Config: ctrConfig(name), SandboxConfig: podConfig("x")})
	if err != nil {
		e.t.Fatalf("CreateContainer: %v", err)
	}
	return r.ContainerId
}

func (e *env) ctrStatus(id string) *runtime.ContainerStatus {
	e.t.Helper()
	r, err := e.s.ContainerStatus(context.Background(), &runtime.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		e.t.Fatalf("ContainerStatus: %v", err)
	}
	return r.Status
}

// eventually polls cond for up to 2s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
