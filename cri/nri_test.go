package cri

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
)

// testPlugin is an NRI plugin connected to the service through the real
// adaptation and socket. It records the events it gets as "Event:id" and
// runs the …Fn hooks, if set, from the event's goroutine.
type testPlugin struct {
	mu     sync.Mutex
	events []string
	pods   map[string]*api.PodSandbox // last seen, by ID
	ctrs   map[string]*api.Container
	// synced are the IDs of the pods and containers of Synchronize.
	synced []string
	ready  chan struct{}

	RunPodFn func(*api.PodSandbox) error
	CreateFn func(*api.PodSandbox, *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error)
	UpdateFn func(*api.Container, *api.LinuxResources) []*api.ContainerUpdate
	SyncFn   func([]*api.Container) []*api.ContainerUpdate
}

func (p *testPlugin) record(ev string, pod *api.PodSandbox, ctr *api.Container) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := pod.GetId()
	p.pods[id] = pod
	if ctr != nil {
		id = ctr.Id
		p.ctrs[id] = ctr
	}
	p.events = append(p.events, ev+":"+id)
}

func (p *testPlugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	p.mu.Lock()
	for _, pod := range pods {
		p.synced = append(p.synced, pod.Id)
		p.pods[pod.Id] = pod
	}
	for _, c := range ctrs {
		p.synced = append(p.synced, c.Id)
		p.ctrs[c.Id] = c
	}
	p.mu.Unlock()
	defer close(p.ready)
	if p.SyncFn != nil {
		return p.SyncFn(ctrs), nil
	}
	return nil, nil
}

func (p *testPlugin) RunPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("RunPodSandbox", pod, nil)
	if p.RunPodFn != nil {
		return p.RunPodFn(pod)
	}
	return nil
}
func (p *testPlugin) StopPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("StopPodSandbox", pod, nil)
	return nil
}
func (p *testPlugin) RemovePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("RemovePodSandbox", pod, nil)
	return nil
}
func (p *testPlugin) CreateContainer(_ context.Context, pod *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.record("CreateContainer", pod, c)
	if p.CreateFn != nil {
		return p.CreateFn(pod, c)
	}
	return nil, nil, nil
}
func (p *testPlugin) PostCreateContainer(_ context.Context, pod *api.PodSandbox, c *api.Container) error {
	p.record("PostCreateContainer", pod, c)
	return nil
}
func (p *testPlugin) StartContainer(_ context.Context, pod *api.PodSandbox, c *api.Container) error {
	p.record("StartContainer", pod, c)
	return nil
}
func (p *testPlugin) PostStartContainer(_ context.Context, pod *api.PodSandbox, c *api.Container) error {
	p.record("PostStartContainer", pod, c)
	return nil
}
func (p *testPlugin) UpdateContainer(_ context.Context, pod *api.PodSandbox, c *api.Container, res *api.LinuxResources) ([]*api.ContainerUpdate, error) {
	p.record("UpdateContainer", pod, c)
	if p.UpdateFn != nil {
		return p.UpdateFn(c, res), nil
	}
	return nil, nil
}
func (p *testPlugin) PostUpdateContainer(_ context.Context, pod *api.PodSandbox, c *api.Container) error {
	p.record("PostUpdateContainer", pod, c)
	return nil
}
func (p *testPlugin) StopContainer(_ context.Context, pod *api.PodSandbox, c *api.Container) ([]*api.ContainerUpdate, error) {
	p.record("StopContainer", pod, c)
	return nil, nil
}
func (p *testPlugin) RemoveContainer(_ context.Context, pod *api.PodSandbox, c *api.Container) error {
	p.record("RemoveContainer", pod, c)
	return nil
}

// take returns the events so far and forgets them.
func (p *testPlugin) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ev := p.events
	p.events = nil
	return ev
}

func (p *testPlugin) container(id string) *api.Container {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ctrs[id]
}

func (p *testPlugin) pod(id string) *api.PodSandbox {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pods[id]
}

// newNRIEnv is an env whose service has NRI enabled on a socket in a
// temporary directory.
func newNRIEnv(t *testing.T) (*env, string) {
	t.Helper()
	// Not t.TempDir: a unix socket path must stay short.
	dir, err := os.MkdirTemp("", "nri")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "nri.sock")
	e := &env{t: t, vms: newFakeVMs(), images: newFakeImages(), net: &fakeNet{}, logs: &fakeLogs{},
		paths: Paths{Root: filepath.Join(dir, "root"), State: filepath.Join(dir, "state")},
		config: func(c *Config) {
			c.NRI.Enable, c.NRI.SocketPath = true, sock
		}}
	e.open()
	return e, sock
}

// connectPlugin connects p and waits until it is synchronised.
func connectPlugin(t *testing.T, sock, name string, p *testPlugin) {
	t.Helper()
	waitSynced(t, p, startPlugin(t, sock, name, p))
}

// startPlugin connects p; the returned channel is closed when it stops.
func startPlugin(t *testing.T, sock, name string, p *testPlugin) <-chan struct{} {
	t.Helper()
	p.pods, p.ctrs, p.ready = map[string]*api.PodSandbox{}, map[string]*api.Container{}, make(chan struct{})
	s, err := stub.New(p, stub.WithPluginName(name), stub.WithPluginIdx("10"), stub.WithSocketPath(sock))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); s.Stop(); <-done })
	return done
}

func waitSynced(t *testing.T, p *testPlugin, done <-chan struct{}) {
	t.Helper()
	select {
	case <-p.ready:
	case <-done:
		t.Fatal("plugin stopped before it was synchronised")
	case <-time.After(10 * time.Second):
		t.Fatal("plugin not synchronised within 10s")
	}
}

func TestNRISocketIsRootOnly(t *testing.T) {
	_, sock := newNRIEnv(t)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v", fi.Mode())
	}
}

func TestNRILifecycleOrderAndMetadata(t *testing.T) {
	e, sock := newNRIEnv(t)
	p := &testPlugin{}
	connectPlugin(t, sock, "order", p)
	ctx := context.Background()

	pod := e.runPod("p")
	cid := e.createCtr(pod, "app")
	if _, err := e.s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cid}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: cid, Linux: &runtime.LinuxContainerResources{MemoryLimitInBytes: 64 << 20}}); err != nil {
		t.Fatal(err)
	}
	// The container stops with its pod.
	for range 2 {
		if _, err := e.s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"RunPodSandbox:" + pod,
		"CreateContainer:" + cid, "PostCreateContainer:" + cid,
		"StartContainer:" + cid, "PostStartContainer:" + cid,
		"UpdateContainer:" + cid, "PostUpdateContainer:" + cid,
		"StopContainer:" + cid, "StopPodSandbox:" + pod, // once, for two stops
		"RemoveContainer:" + cid, "RemovePodSandbox:" + pod,
	}
	if got := p.take(); !slices.Equal(got, want) {
		t.Fatalf("events\n got %q\nwant %q", got, want)
	}

	np := p.pod(pod)
	if np.Name != "p" || np.Namespace != "default" || np.Uid != "uid-p" || np.Labels["app"] != "p" ||
		!slices.Equal(np.Ips, []string{"10.88.0.2", "fd00::2"}) || np.Linux.CgroupsPath != guestCgroupParent {
		t.Fatalf("pod %+v", np)
	}
	nc := p.container(cid)
	if nc.Name != "app" || nc.PodSandboxId != pod || nc.Labels["ctr"] != "app" || nc.Linux.CgroupsPath != "/podvisor/"+cid ||
		!slices.Equal(nc.Args, []string{"sh"}) || nc.State != api.ContainerState_CONTAINER_STOPPED {
		t.Fatalf("container %+v", nc)
	}
}

func TestNRIContainerExitIsStopEvent(t *testing.T) {
	e, sock := newNRIEnv(t)
	p := &testPlugin{}
	connectPlugin(t, sock, "exit", p)
	ctx := context.Background()
	pod := e.runPod("p")
	cid := e.createCtr(pod, "app")
	if _, err := e.s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cid}); err != nil {
		t.Fatal(err)
	}
	e.vms.get(pod).proc(cid).exit(ExitStatus{Code: 1, Finished: time.Now()})
	eventually(t, "StopContainer", func() bool {
		c := p.container(cid)
		return c != nil && c.State == api.ContainerState_CONTAINER_STOPPED && c.ExitCode == 1
	})
	got := p.take()
	if got[len(got)-1] != "StopContainer:"+cid {
		t.Fatalf("events %q", got)
	}
}

func TestNRIRunPodSandboxHook(t *testing.T) {
	e, sock := newNRIEnv(t)
	p := &testPlugin{}
	connectPlugin(t, sock, "run", p)
	ctx := context.Background()
	var seen []*runtime.PodSandbox
	fail := true
	p.RunPodFn = func(pod *api.PodSandbox) error {
		// While the hook runs, the sandbox is nowhere to be seen.
		r, err := e.s.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
		if err != nil {
			return err
		}
		seen = append(seen, r.Items...)
		if _, err := e.s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: pod.Id}); !errdefs.IsNotFound(err) {
			return errors.New("status of the sandbox during its hook: not NotFound")
		}
		if fail {
			fail = false
			return errors.New("induced failure")
		}
		return nil
	}
	_, err := e.s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("p")})
	if err == nil || !strings.Contains(err.Error(), "induced failure") {
		t.Fatalf("RunPodSandbox with a failing hook: %v", err)
	}
	// Nothing is left: no sandbox, no network, no VM; plugins were told.
	r, _ := e.s.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if len(r.Items) != 0 || e.net.count() != 0 {
		t.Fatalf("left after a failed hook: %d sandboxes, %d networks", len(r.Items), e.net.count())
	}
	got := p.take()
	if len(got) != 3 || !strings.HasPrefix(got[0], "RunPodSandbox:") || !strings.HasPrefix(got[1], "StopPodSandbox:") || !strings.HasPrefix(got[2], "RemovePodSandbox:") {
		t.Fatalf("events %q", got)
	}
	failed := strings.TrimPrefix(got[0], "RunPodSandbox:")
	if v := e.vms.get(failed); v == nil || !v.stopped {
		t.Fatalf("VM of the failed sandbox not stopped")
	}
	// The retry (same metadata) works.
	id := e.runPod("p")
	if id == failed || len(seen) != 0 {
		t.Fatalf("retry id %s (failed %s), seen during hooks %v", id, failed, seen)
	}
}

func TestNRICreateContainerHook(t *testing.T) {
	e, sock := newNRIEnv(t)
	p := &testPlugin{}
	connectPlugin(t, sock, "create", p)
	ctx := context.Background()
	pod := e.runPod("p")
	p.take()
	fail := true
	var seen int
	p.CreateFn = func(_ *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
		r, _ := e.s.ListContainers(ctx, &runtime.ListContainersRequest{})
		seen += len(r.Containers)
		if fail {
			fail = false
			return nil, nil, errors.New("induced failure")
		}
		return nil, nil, nil
	}
	_, err := e.s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: ctrConfig("app")})
	if err == nil || !strings.Contains(err.Error(), "induced failure") {
		t.Fatalf("CreateContainer with a failing hook: %v", err)
	}
	got := p.take()
	if len(got) != 3 || !strings.HasPrefix(got[0], "CreateContainer:") || !strings.HasPrefix(got[1], "StopContainer:") || !strings.HasPrefix(got[2], "RemoveContainer:") {
		t.Fatalf("events %q", got)
	}
	failed := strings.TrimPrefix(got[0], "CreateContainer:")
	vm := e.vms.get(pod)
	if _, ok := vm.containers[failed]; ok || !slices.Contains(vm.released, failed) {
		t.Fatalf("failed container left in the VM or its files kept")
	}
	// The name is free again.
	cid := e.createCtr(pod, "app")
	if seen != 0 || e.ctrStatus(cid).State != runtime.ContainerState_CONTAINER_CREATED {
		t.Fatalf("containers seen during hooks: %d", seen)
	}
}

func TestNRIAdjustmentApplied(t *testing.T) {
	e, sock := newNRIEnv(t)
	p := &testPlugin{}
	connectPlugin(t, sock, "adjust", p)
	hostDir, secretDir := t.TempDir(), t.TempDir()
	p.CreateFn = func(_ *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
		a := &api.ContainerAdjustment{}
		a.AddAnnotation("nri.example/owner", "test")
		a.AddMount(&api.Mount{Destination: "/secret", Type: "bind", Source: secretDir, Options: []string{"rbind", "rro", "nosuid", "nodev", "relatime"}})
		a.AddEnv("FROM_PLUGIN", "1")
		a.AddEnv("PATH", "/plugin/bin")
		a.SetArgs([]string{"sleep", "1000"})
		a.AddRlimit("RLIMIT_NOFILE", 2048, 1024)
		a.SetLinuxMemoryLimit(128 << 20)
		a.SetLinuxCPUShares(2048)
		a.SetLinuxCPUSetCPUs("0")
		a.SetLinuxPidLimits(100)
		oom := 500
		a.SetLinuxOomScoreAdj(&oom)
		a.AddMount(&api.Mount{Destination: "/plugin", Type: "bind", Source: hostDir, Options: []string{"rbind", "ro"}})
		a.AddMount(&api.Mount{Destination: "/scratch", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}})
		return a, nil, nil
	}
	pod := e.runPod("p")
	cid := e.createCtr(pod, "app")
	spec := e.vms.get(pod).containers[cid]
	pr := spec.Process
	if spec.Annotations["nri.example/owner"] != "test" || !slices.Contains(pr.Env, "FROM_PLUGIN=1") ||
		!slices.Contains(pr.Env, "PATH=/plugin/bin") || slices.Contains(pr.Env, "PATH=/bin") ||
		!slices.Equal(pr.Args, []string{"sleep", "1000"}) || pr.OOMScoreAdj == nil || *pr.OOMScoreAdj != 500 {
		t.Fatalf("process %+v annotations %v", pr, spec.Annotations)
	}
	if i := slices.IndexFunc(pr.Rlimits, func(r specs.POSIXRlimit) bool { return r.Type == "RLIMIT_NOFILE" }); i < 0 || pr.Rlimits[i].Hard != 2048 {
		t.Fatalf("rlimits %+v", pr.Rlimits)
	}
	res := spec.Linux.Resources
	if *res.Memory.Limit != 128<<20 || res.CPU.Cpus != "0" || res.Unified["cpu.weight"] == "" || *res.Pids.Limit != 100 {
		t.Fatalf("resources %+v", res)
	}
	var bind, tmpfs, rro bool
	for _, m := range spec.Mounts {
		switch m.Destination {
		case "/secret":
			rro = slices.Contains(m.Options, "rro") && slices.Contains(m.Options, "nosuid") && slices.Contains(m.Options, "nodev") &&
				!slices.Contains(m.Options, "rw") && !slices.Contains(m.Options, "relatime")
		case "/plugin":
			bind = m.Type == "bind" && strings.HasPrefix(m.Source, "/run/podvisor/shared/mounts/"+cid) && slices.Contains(m.Options, "ro")
		case "/scratch":
			tmpfs = m.Type == "tmpfs"
		}
	}
	if !bind || !tmpfs || !rro {
		t.Fatalf("mounts %+v", spec.Mounts)
	}
	// A recursive read-only bind is read-only for its whole tree on the
	// host side too, not a writable share.
	want := map[string]fakeShare{hostDir: {hostDir, true, false}, secretDir: {secretDir, true, true}}
	for _, sh := range e.vms.get(pod).shares {
		if w, ok := want[sh.host]; ok {
			if sh != w {
				t.Errorf("share %+v, want %+v", sh, w)
			}
			delete(want, sh.host)
		}
	}
	if len(want) != 0 {
		t.Errorf("not shared: %v", want)
	}
}

func TestNRIAdjustmentRefused(t *testing.T) {
	tests := []struct {
		name, want string
		adjust     func(*api.ContainerAdjustment)
	}{
		{"hooks", "hooks", func(a *api.ContainerAdjustment) {
			a.AddHooks(&api.Hooks{Prestart: []*api.Hook{{Path: "/bin/true"}}})
		}},
		{"device", "linux.devices", func(a *api.ContainerAdjustment) { a.AddDevice(&api.LinuxDevice{Path: "/dev/kvm", Type: "c"}) }},
		{"namespace", "linux.namespaces", func(a *api.ContainerAdjustment) {
			a.AddOrReplaceNamespace(&api.LinuxNamespace{Type: "network", Path: "/proc/1/ns/net"})
		}},
		{"seccomp", "linux.seccomp_policy", func(a *api.ContainerAdjustment) {
			a.SetLinuxSeccompPolicy(&api.LinuxSeccomp{DefaultAction: "SCMP_ACT_ALLOW"})
		}},
		{"cgroups path", "linux.cgroups_path", func(a *api.ContainerAdjustment) { a.SetLinuxCgroupsPath("/host") }},
		{"hugepages", "hugepage_limits", func(a *api.ContainerAdjustment) { a.AddLinuxHugepageLimit("2MB", 1<<21) }},
		{"proc mount", `mount "/x"`, func(a *api.ContainerAdjustment) {
			a.AddMount(&api.Mount{Destination: "/x", Type: "proc", Source: "proc"})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, sock := newNRIEnv(t)
			p := &testPlugin{}
			connectPlugin(t, sock, "refused", p)
			p.CreateFn = func(*api.PodSandbox, *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
				a := &api.ContainerAdjustment{}
				tc.adjust(a)
				return a, nil, nil
			}
			ctx := context.Background()
			pod := e.runPod("p")
			_, err := e.s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: ctrConfig("app")})
			if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want FailedPrecondition naming %q", err, tc.want)
			}
			if r, _ := e.s.ListContainers(ctx, &runtime.ListContainersRequest{}); len(r.Containers) != 0 {
				t.Fatalf("refused container listed")
			}
		})
	}
}

func TestNRISynchronize(t *testing.T) {
	e, sock := newNRIEnv(t)
	ctx := context.Background()
	pod := e.runPod("p")
	running := e.createCtr(pod, "running")
	if _, err := e.s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: running}); err != nil {
		t.Fatal(err)
	}
	created := e.createCtr(pod, "created")

	// A plugin connecting later is handed what exists, and its updates
	// take UpdateContainerResources' path.
	p := &testPlugin{SyncFn: func(ctrs []*api.Container) []*api.ContainerUpdate {
		u := &api.ContainerUpdate{ContainerId: running}
		u.SetLinuxMemoryLimit(32 << 20)
		return []*api.ContainerUpdate{u}
	}}
	connectPlugin(t, sock, "late", p)
	if !slices.Contains(p.synced, pod) || !slices.Contains(p.synced, running) || !slices.Contains(p.synced, created) {
		t.Fatalf("synchronised %v", p.synced)
	}
	if s := p.container(running).State; s != api.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("running container synchronised as %v", s)
	}
	// The runtime applies the updates once Synchronize returned.
	eventually(t, "the sync update applied", func() bool {
		vm := e.vms.get(pod)
		vm.mu.Lock()
		defer vm.mu.Unlock()
		r := vm.resources[running]
		return r != nil && r.Memory != nil && *r.Memory.Limit == 32<<20
	})
	if st := e.ctrStatus(running); st.Resources.Linux.MemoryLimitInBytes != 32<<20 {
		t.Fatalf("sync update not recorded: %+v", st.Resources)
	}

	// After a restart, a plugin gets the pods that survived.
	e.reopen()
	p2 := &testPlugin{}
	connectPlugin(t, sock, "after-restart", p2)
	if !slices.Contains(p2.synced, pod) || !slices.Contains(p2.synced, running) {
		t.Fatalf("synchronised after restart %v", p2.synced)
	}
}

func TestNRIUpdateContainerAmended(t *testing.T) {
	e, sock := newNRIEnv(t)
	p := &testPlugin{UpdateFn: func(c *api.Container, _ *api.LinuxResources) []*api.ContainerUpdate {
		u := &api.ContainerUpdate{ContainerId: c.Id}
		u.SetLinuxCPUSetCPUs("0")
		return []*api.ContainerUpdate{u}
	}}
	connectPlugin(t, sock, "update", p)
	ctx := context.Background()
	pod := e.runPod("p")
	cid := e.createCtr(pod, "c")
	if _, err := e.s.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: cid, Linux: &runtime.LinuxContainerResources{MemoryLimitInBytes: 64 << 20}}); err != nil {
		t.Fatal(err)
	}
	r := e.vms.get(pod).resources[cid]
	if r == nil || *r.Memory.Limit != 64<<20 || r.CPU == nil || r.CPU.Cpus != "0" {
		t.Fatalf("applied %+v", r)
	}
}

func TestNRINoContainerLostDuringSynchronize(t *testing.T) {
	e, sock := newNRIEnv(t)
	ctx := context.Background()
	pod := e.runPod("p")
	before := e.createCtr(pod, "before")
	reached, release := make(chan struct{}), make(chan struct{})
	p := &testPlugin{SyncFn: func([]*api.Container) []*api.ContainerUpdate {
		close(reached)
		<-release
		return nil
	}}
	done := startPlugin(t, sock, "late", p)
	<-reached
	// A container created while the plugin synchronises.
	created := make(chan string, 1)
	go func() {
		r, err := e.s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: ctrConfig("during")})
		if err != nil {
			created <- "error: " + err.Error()
			return
		}
		created <- r.ContainerId
	}()
	time.Sleep(50 * time.Millisecond) // let the creation reach the runtime
	close(release)
	waitSynced(t, p, done)
	during := <-created
	if strings.HasPrefix(during, "error: ") {
		t.Fatal(during)
	}
	eventually(t, "the plugin to learn of every container", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return slices.Contains(p.synced, before) &&
			(slices.Contains(p.synced, during) || slices.Contains(p.events, "CreateContainer:"+during))
	})
}
