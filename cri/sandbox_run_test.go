package cri

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
)

func TestRunPodSandboxValidation(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name  string
		edit  func(*runtime.RunPodSandboxRequest)
		field string
	}{
		{"no config", func(r *runtime.RunPodSandboxRequest) { r.Config = nil }, "config"},
		{"no metadata", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata = nil }, "config.metadata"},
		{"no name", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata.Name = "" }, "config.metadata.name"},
		{"no namespace", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata.Namespace = "" }, "config.metadata.namespace"},
		{"no uid", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata.Uid = "" }, "config.metadata.uid"},
		{"long name", func(r *runtime.RunPodSandboxRequest) { r.Config.Metadata.Name = strings.Repeat("a", 300) }, "config.metadata.name"},
		{"relative log dir", func(r *runtime.RunPodSandboxRequest) { r.Config.LogDirectory = "logs" }, "config.log_directory"},
		{"huge labels", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Labels = map[string]string{"k": strings.Repeat("v", 300<<10)}
		}, "config.labels"},
		{"empty annotation key", func(r *runtime.RunPodSandboxRequest) { r.Config.Annotations = map[string]string{"": "v"} }, "config.annotations"},
		{"host network", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE}}}
		}, "linux.security_context.namespace_options.network"},
		{"host pid", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_NODE}}}
		}, "linux.security_context.namespace_options.pid"},
		{"host ipc", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{Ipc: runtime.NamespaceMode_NODE}}}
		}, "linux.security_context.namespace_options.ipc"},
		{"bad port", func(r *runtime.RunPodSandboxRequest) {
			r.Config.PortMappings = []*runtime.PortMapping{{ContainerPort: 70000}}
		}, "config.port_mappings[0].container_port"},
		{"too much memory", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux = &runtime.LinuxPodSandboxConfig{Resources: &runtime.LinuxContainerResources{MemoryLimitInBytes: 1 << 40}}
		}, "memory_limit_in_bytes"},
		{"unknown handler", func(r *runtime.RunPodSandboxRequest) { r.RuntimeHandler = "runc" }, "runtime_handler"},
		{"host-wide sysctl", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux = &runtime.LinuxPodSandboxConfig{Sysctls: map[string]string{"kernel.panic": "1"}}
		}, "config.linux.sysctls"},
		{"denied sysctl", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux = &runtime.LinuxPodSandboxConfig{Sysctls: map[string]string{"net.core.bpf_jit_harden": "0"}}
		}, "config.linux.sysctls"},
		{"sysctl value with a newline", func(r *runtime.RunPodSandboxRequest) {
			r.Config.Linux = &runtime.LinuxPodSandboxConfig{Sysctls: map[string]string{"net.ipv4.ip_forward": "1\nkernel.panic=1"}}
		}, "config.linux.sysctls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &runtime.RunPodSandboxRequest{Config: podConfig("p")}
			tc.edit(r)
			_, err := e.s.RunPodSandbox(context.Background(), r)
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want InvalidArgument naming %s", err, tc.field)
			}
		})
	}
	if e.vms.boots != 0 || e.net.count() != 0 {
		t.Fatal("validation failures must have no side effects")
	}
}

func TestRunPodSandbox(t *testing.T) {
	e := newEnv(t)
	cfg := podConfig("web")
	cfg.Linux = &runtime.LinuxPodSandboxConfig{
		Resources: &runtime.LinuxContainerResources{CpuQuota: 150000, CpuPeriod: 100000, MemoryLimitInBytes: 256 << 20},
		Sysctls:   map[string]string{"net.ipv4.ip_forward": "1"},
	}
	r, err := e.s.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	id := r.PodSandboxId
	if len(id) != 64 {
		t.Fatalf("id %q", id)
	}
	vm := e.vms.get(id)
	if vm.spec.VCPUs != 2 || vm.spec.MemoryMiB != 256+128 || vm.spec.Hostname != "web" || vm.spec.Sysctls["net.ipv4.ip_forward"] != "1" {
		t.Fatalf("VM spec %+v", vm.spec)
	}
	st, err := e.s.PodSandboxStatus(context.Background(), &runtime.PodSandboxStatusRequest{PodSandboxId: id[:12], Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	s := st.Status
	if s.State != runtime.PodSandboxState_SANDBOX_READY || s.Network.Ip != "10.88.0.2" || s.Network.AdditionalIps[0].Ip != "fd00::2" ||
		s.Labels["app"] != "web" || s.Metadata.Name != "web" || s.CreatedAt == 0 || st.Info["info"] == "" {
		t.Fatalf("status %+v", st)
	}
	// The same pod (same attempt) again: the existing sandbox, no second VM.
	r2, err := e.s.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: podConfig("web")})
	if err != nil || r2.PodSandboxId != id || e.vms.boots != 1 {
		t.Fatalf("retry: %v %v boots=%d", r2, err, e.vms.boots)
	}
}

func TestRunPodSandboxRetryWaitsForBoot(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	e.vms.BootFn = func(ctx context.Context, _ VMSpec) error {
		entered <- struct{}{}
		<-release
		return nil
	}
	var wg sync.WaitGroup
	ids := make([]string, 3)
	errs := make([]error, 3)
	for i := range ids {
		wg.Go(func() {
			r, err := e.s.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: podConfig("slow")})
			errs[i] = err
			if r != nil {
				ids[i] = r.PodSandboxId
			}
		})
	}
	<-entered
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	for i := range ids {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("call %d: %q %v (first %q)", i, ids[i], errs[i], ids[0])
		}
	}
	if e.vms.boots != 1 {
		t.Fatalf("%d boots, want 1", e.vms.boots)
	}
}

func TestRunPodSandboxBootFailureUndoes(t *testing.T) {
	e := newEnv(t)
	e.vms.BootFn = func(context.Context, VMSpec) error { return errors.New("qemu exploded") }
	_, err := e.s.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: podConfig("bad")})
	if err == nil || !strings.Contains(err.Error(), "qemu exploded") {
		t.Fatalf("err = %v", err)
	}
	if e.net.count() != 0 || e.net.teardowns != 1 {
		t.Fatalf("network not torn down: %d left, %d teardowns", e.net.count(), e.net.teardowns)
	}
	if _, ok := e.s.sandboxNames.Holder(sandboxName(podConfig("bad").Metadata)); ok {
		t.Fatal("name still reserved after failure")
	}
	e.vms.BootFn = nil
	if _, err := e.s.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: podConfig("bad")}); err != nil {
		t.Fatalf("retry after failure: %v", err)
	}
}

func TestStopRemovePodSandboxIdempotent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, id := range []string{"0123456789abcdef", strings.Repeat("f", 64)} {
		if _, err := e.s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("stop unknown: %v", err)
		}
		if _, err := e.s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("remove unknown: %v", err)
		}
	}
	if _, err := e.s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("empty id: %v", err)
	}
	id := e.runPod("p")
	cid := e.createCtr(id, "c")
	if _, err := e.s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cid}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := e.s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("stop: %v", err)
		}
	}
	st, _ := e.s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id})
	if st.Status.State != runtime.PodSandboxState_SANDBOX_NOTREADY || st.Status.Network != nil {
		t.Fatalf("after stop: %+v", st.Status)
	}
	if cs := e.ctrStatus(cid); cs.State != runtime.ContainerState_CONTAINER_EXITED {
		t.Fatalf("container after pod stop: %v", cs.State)
	}
	if e.net.teardowns != 1 || !e.vms.get(id).stopped {
		t.Fatalf("teardowns %d, vm stopped %v", e.net.teardowns, e.vms.get(id).stopped)
	}
	for range 2 {
		if _, err := e.s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("remove: %v", err)
		}
	}
	if _, err := e.s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("status after remove: %v", err)
	}
	if _, err := e.s.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: cid}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("container after pod remove: %v", err)
	}
	// The name is free again.
	e.runPod("p")
}

func TestListPodSandboxFilters(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.runPod("a"), e.runPod("b")
	e.s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: b})
	for _, tc := range []struct {
		name   string
		filter *runtime.PodSandboxFilter
		want   []string
	}{
		{"all", nil, []string{a, b}},
		{"id prefix", &runtime.PodSandboxFilter{Id: a[:8]}, []string{a}},
		{"ready", &runtime.PodSandboxFilter{State: &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_READY}}, []string{a}},
		{"not ready", &runtime.PodSandboxFilter{State: &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_NOTREADY}}, []string{b}},
		{"label", &runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "b"}}, []string{b}},
		{"label miss", &runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "zzz"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := e.s.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: tc.filter})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, it := range r.Items {
				got[it.Id] = true
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d items, want %d", len(got), len(tc.want))
			}
			for _, w := range tc.want {
				if !got[w] {
					t.Fatalf("missing %s", w)
				}
			}
		})
	}
}

func TestVMLostMarksSandboxNotReady(t *testing.T) {
	e := newEnv(t)
	id := e.runPod("p")
	vm := e.vms.get(id)
	vm.mu.Lock()
	close(vm.done)
	vm.stopped = true
	vm.mu.Unlock()
	eventually(t, "sandbox not ready", func() bool {
		sb, _ := e.s.sandboxes.Get(id)
		return sb.Status.State.CRIState() == runtime.PodSandboxState_SANDBOX_NOTREADY
	})
}

// TestRunPodSandboxOutlivesCaller: a caller that gives up during the boot
// gets its context's error; the boot goes on, and a retry (during or
// after it) returns the same sandbox without a second VM.
func TestRunPodSandboxOutlivesCaller(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	e.vms.BootFn = func(ctx context.Context, _ VMSpec) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	req := &runtime.RunPodSandboxRequest{Config: podConfig("slow")}
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := e.s.RunPodSandbox(short, req); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "goes on") {
		t.Fatalf("err = %v, want DeadlineExceeded saying the boot goes on", err)
	}
	if e.net.count() != 1 || e.net.teardowns != 0 {
		t.Fatalf("the caller's timeout undid the boot: %d networks, %d teardowns", e.net.count(), e.net.teardowns)
	}
	retry := make(chan *runtime.RunPodSandboxResponse)
	go func() {
		r, err := e.s.RunPodSandbox(context.Background(), req)
		if err != nil {
			t.Errorf("retry during boot: %v", err)
		}
		retry <- r
	}()
	time.Sleep(10 * time.Millisecond)
	close(release)
	r := <-retry
	if r == nil || len(r.PodSandboxId) != 64 {
		t.Fatalf("retry: %v", r)
	}
	again, err := e.s.RunPodSandbox(context.Background(), req)
	if err != nil || again.PodSandboxId != r.PodSandboxId {
		t.Fatalf("retry after boot: %v %v, want %s", again, err, r.PodSandboxId)
	}
	if e.vms.boots != 1 {
		t.Fatalf("%d boots, want 1", e.vms.boots)
	}
	st, err := e.s.PodSandboxStatus(context.Background(), &runtime.PodSandboxStatusRequest{PodSandboxId: r.PodSandboxId})
	if err != nil || st.Status.State != runtime.PodSandboxState_SANDBOX_READY {
		t.Fatalf("status %v %v", st, err)
	}
}

// TestRunPodSandboxRetry covers a repeated RunPodSandbox with the same
// metadata in each state of the first one.
func TestRunPodSandboxRetry(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup runs the first RunPodSandbox (or not) and returns its
		// sandbox ID, "" if none.
		setup   func(e *env) string
		wantErr error // nil: the retry returns the first sandbox
	}{
		{"ready", func(e *env) string { return e.runPod("p") }, nil},
		{"stopped", func(e *env) string {
			id := e.runPod("p")
			e.s.StopPodSandbox(context.Background(), &runtime.StopPodSandboxRequest{PodSandboxId: id})
			return id
		}, errdefs.ErrAlreadyExists},
		{"VM lost", func(e *env) string {
			id := e.runPod("p")
			e.vms.get(id).Stop(context.Background())
			eventually(e.t, "not ready", func() bool {
				sb, _ := e.s.sandboxes.Get(id)
				return sb.Status.State != "ready"
			})
			return id
		}, errdefs.ErrAlreadyExists},
		{"removed", func(e *env) string {
			id := e.runPod("p")
			e.s.RemovePodSandbox(context.Background(), &runtime.RemovePodSandboxRequest{PodSandboxId: id})
			return ""
		}, nil},
		{"failed", func(e *env) string {
			e.vms.BootFn = func(context.Context, VMSpec) error { return errors.New("no") }
			e.s.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: podConfig("p")})
			e.vms.BootFn = nil
			return ""
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			first := tc.setup(e)
			r, err := e.s.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: podConfig("p")})
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), first) {
					t.Fatalf("err = %v, want %v naming %s", err, tc.wantErr, first)
				}
				// A new attempt is a new sandbox.
				cfg := podConfig("p")
				cfg.Metadata.Attempt = 1
				if r, err := e.s.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: cfg}); err != nil || r.PodSandboxId == first {
					t.Fatalf("next attempt: %v %v", r, err)
				}
			case err != nil:
				t.Fatalf("retry: %v", err)
			case first != "" && r.PodSandboxId != first:
				t.Fatalf("retry returned %s, want %s", r.PodSandboxId, first)
			case first == "" && len(r.PodSandboxId) != 64:
				t.Fatalf("retry returned %q", r.PodSandboxId)
			}
		})
	}
}

// TestRunPodSandboxJoinedFailure: callers that joined a boot get its error
// and do not boot again.
func TestRunPodSandboxJoinedFailure(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	e.vms.BootFn = func(context.Context, VMSpec) error {
		<-release
		return errors.New("guest kernel panic")
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = e.s.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: podConfig("p")})
		})
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "guest kernel panic") {
			t.Errorf("call %d: %v", i, err)
		}
	}
	if e.net.count() != 0 {
		t.Fatal("network left behind")
	}
}

// TestCloseCancelsBoot: closing the service cancels a boot in progress and
// waits for its cleanup.
func TestCloseCancelsBoot(t *testing.T) {
	e := newEnv(t)
	entered := make(chan struct{})
	e.vms.BootFn = func(ctx context.Context, _ VMSpec) error {
		close(entered)
		<-ctx.Done()
		return ctx.Err()
	}
	done := make(chan error)
	go func() {
		_, err := e.s.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: podConfig("p")})
		done <- err
	}()
	<-entered
	e.s.Close()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}
	if e.net.count() != 0 || e.net.teardowns != 1 {
		t.Fatalf("boot not undone: %d networks, %d teardowns", e.net.count(), e.net.teardowns)
	}
	if _, err := e.s.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: podConfig("q")}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("after close: %v", err)
	}
}

// TestStopPodSandboxRetriesFailedVMStop: a VM stop that failed is tried
// again by the next StopPodSandbox, and a caller's cancelled context does
// not keep the VM from being stopped.
func TestStopPodSandboxRetriesFailedVMStop(t *testing.T) {
	e := newEnv(t)
	id := e.runPod("p")
	vm := e.vms.get(id)
	vm.StopErr = errors.New("QMP timeout")
	if _, err := e.s.StopPodSandbox(context.Background(), &runtime.StopPodSandboxRequest{PodSandboxId: id}); err == nil {
		t.Fatal("stop succeeded")
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.s.StopPodSandbox(cancelled, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	st, _ := e.s.PodSandboxStatus(context.Background(), &runtime.PodSandboxStatusRequest{PodSandboxId: id})
	if !vm.stopped || st.Status.State != runtime.PodSandboxState_SANDBOX_NOTREADY || e.net.count() != 0 {
		t.Fatalf("vm stopped %v, state %v, %d networks", vm.stopped, st.Status.State, e.net.count())
	}
}
