package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
)

func TestCreateContainerValidation(t *testing.T) {
	e := newEnv(t)
	pod := e.runPod("p")
	for _, tc := range []struct {
		name  string
		edit  func(*runtime.CreateContainerRequest)
		kind  error
		field string
	}{
		{"no sandbox id", func(r *runtime.CreateContainerRequest) { r.PodSandboxId = "" }, errdefs.ErrInvalidArgument, "pod_sandbox_id"},
		{"unknown sandbox", func(r *runtime.CreateContainerRequest) { r.PodSandboxId = "nope" }, errdefs.ErrNotFound, "nope"},
		{"no metadata", func(r *runtime.CreateContainerRequest) { r.Config.Metadata = nil }, errdefs.ErrInvalidArgument, "config.metadata"},
		{"no image", func(r *runtime.CreateContainerRequest) { r.Config.Image = nil }, errdefs.ErrInvalidArgument, "config.image.image"},
		{"escaping log path", func(r *runtime.CreateContainerRequest) { r.Config.LogPath = "../../etc/x" }, errdefs.ErrInvalidArgument, "config.log_path"},
		{"relative mount", func(r *runtime.CreateContainerRequest) {
			r.Config.Mounts = []*runtime.Mount{{ContainerPath: "data", HostPath: "/tmp"}}
		}, errdefs.ErrInvalidArgument, "config.mounts[0].container_path"},
		{"bad env", func(r *runtime.CreateContainerRequest) { r.Config.Envs = []*runtime.KeyValue{{Key: "A=B"}} }, errdefs.ErrInvalidArgument, "config.envs[0].key"},
		{"host pid", func(r *runtime.CreateContainerRequest) {
			r.Config.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_NODE}
		}, errdefs.ErrInvalidArgument, "linux.security_context.namespace_options.pid"},
		{"bad resources", func(r *runtime.CreateContainerRequest) {
			r.Config.Linux.Resources = &runtime.LinuxContainerResources{CpuShares: -5}
		}, errdefs.ErrInvalidArgument, "config.linux.resources.cpu_shares"},
		{"unknown image", func(r *runtime.CreateContainerRequest) { r.Config.Image.Image = "nginx" }, errdefs.ErrNotFound, "nginx"},
		{"group without user", func(r *runtime.CreateContainerRequest) {
			r.Config.Linux.SecurityContext.RunAsGroup = &runtime.Int64Value{Value: 5}
		}, errdefs.ErrInvalidArgument, "run_as_group"},
		{"writable image volume", func(r *runtime.CreateContainerRequest) {
			r.Config.Mounts = []*runtime.Mount{{ContainerPath: "/x", Image: &runtime.ImageSpec{Image: "busybox"}}}
		}, errdefs.ErrInvalidArgument, "config.mounts[0].readonly"},
		{"image volume with host path", func(r *runtime.CreateContainerRequest) {
			r.Config.Mounts = []*runtime.Mount{{ContainerPath: "/x", HostPath: "/etc", Readonly: true, Image: &runtime.ImageSpec{Image: "busybox"}}}
		}, errdefs.ErrInvalidArgument, "config.mounts[0].host_path"},
		{"escaping image sub-path", func(r *runtime.CreateContainerRequest) {
			r.Config.Mounts = []*runtime.Mount{{ContainerPath: "/x", Readonly: true, Image: &runtime.ImageSpec{Image: "busybox"}, ImageSubPath: "etc/../../x"}}
		}, errdefs.ErrInvalidArgument, "config.mounts[0].image_sub_path"},
		{"sub-path without image", func(r *runtime.CreateContainerRequest) {
			r.Config.Mounts = []*runtime.Mount{{ContainerPath: "/x", HostPath: "/etc", ImageSubPath: "etc"}}
		}, errdefs.ErrInvalidArgument, "config.mounts[0].image_sub_path"},
		{"image volume of a missing image", func(r *runtime.CreateContainerRequest) {
			r.Config.Mounts = []*runtime.Mount{{ContainerPath: "/x", Readonly: true, Image: &runtime.ImageSpec{Image: "nginx"}}}
		}, errdefs.ErrNotFound, "config.mounts[0].image"},
		{"image sub-path missing in the image", func(r *runtime.CreateContainerRequest) {
			r.Config.Mounts = []*runtime.Mount{{ContainerPath: "/x", Readonly: true, Image: &runtime.ImageSpec{Image: "busybox"}, ImageSubPath: "missing"}}
		}, errdefs.ErrInvalidArgument, "config.mounts[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &runtime.CreateContainerRequest{PodSandboxId: pod, Config: ctrConfig("c")}
			tc.edit(r)
			_, err := e.s.CreateContainer(context.Background(), r)
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want %v naming %s", err, tc.kind, tc.field)
			}
		})
	}
	if n := len(e.s.containers.List()); n != 0 {
		t.Fatalf("%d containers left behind", n)
	}
	// Failures released the name.
	e.createCtr(pod, "c")
}

func TestContainerLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	events, cancel := e.s.events.subscribe()
	defer cancel()
	pod := e.runPod("p")
	cid := e.createCtr(pod, "app")

	st := e.ctrStatus(cid)
	if st.State != runtime.ContainerState_CONTAINER_CREATED || st.ImageId != e.images.images["busybox"].ID ||
		!strings.HasPrefix(st.ImageRef, "docker.io/library/busybox@sha256:") || st.Image.Image != "docker.io/library/busybox:latest" ||
		st.LogPath != "/var/log/pods/p/app.log" || st.Labels["ctr"] != "app" || st.User.Linux.Uid != 1000 || st.CreatedAt == 0 {
		t.Fatalf("created status %+v", st)
	}
	spec := e.vms.get(pod).containers[cid]
	if !slices.Equal(spec.Process.Args, []string{"sh"}) || spec.Process.User.UID != 1000 || spec.Linux.CgroupsPath != "/podvisor/"+cid {
		t.Fatalf("spec %+v", spec.Process)
	}
	// Duplicate name.
	if _, err := e.s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: ctrConfig("app")}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := e.s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cid}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cid}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("second start: %v", err)
	}
	if st := e.ctrStatus(cid); st.State != runtime.ContainerState_CONTAINER_RUNNING || st.StartedAt == 0 {
		t.Fatalf("running status %+v", st)
	}
	// Output reaches the log.
	p := e.vms.get(pod).proc(cid)
	p.outW.Write([]byte("hello\n"))
	if _, err := e.s.ReopenContainerLog(ctx, &runtime.ReopenContainerLogRequest{ContainerId: cid}); err != nil {
		t.Fatal(err)
	}
	// Stop: the image's stop signal (SIGQUIT) first.
	if _, err := e.s.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: cid, Timeout: 5}); err != nil {
		t.Fatal(err)
	}
	if p.signals[0] != syscall.SIGQUIT {
		t.Fatalf("signals %v", p.signals)
	}
	st = e.ctrStatus(cid)
	if st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 128+int32(syscall.SIGQUIT) || st.Reason != "Error" || st.FinishedAt == 0 {
		t.Fatalf("exited status %+v", st)
	}
	lw := e.logs.writers["/var/log/pods/p/app.log"]
	<-lw.done
	if string(lw.data) != "hello\n" || lw.reopens != 1 {
		t.Fatalf("log %q reopens %d", lw.data, lw.reopens)
	}
	// Stop and remove are idempotent.
	for range 2 {
		if _, err := e.s.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: cid}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: cid}); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Contains(e.vms.get(pod).released, cid) {
		t.Fatal("container files not released")
	}
	want := []runtime.ContainerEventType{
		runtime.ContainerEventType_CONTAINER_CREATED_EVENT, runtime.ContainerEventType_CONTAINER_STARTED_EVENT,
		runtime.ContainerEventType_CONTAINER_STOPPED_EVENT, runtime.ContainerEventType_CONTAINER_DELETED_EVENT,
	}
	for i, w := range want {
		var ev *runtime.ContainerEventResponse
		for ev == nil || ev.ContainerId == pod { // skip the sandbox's own events
			select {
			case ev = <-events:
			case <-time.After(2 * time.Second):
				t.Fatalf("no event %d", i)
			}
		}
		if ev.ContainerEventType != w || ev.ContainerId != cid || ev.PodSandboxStatus == nil {
			t.Fatalf("event %d: %v %s, want %v", i, ev.ContainerEventType, ev.ContainerId, w)
		}
	}
	// The name can be used again.
	e.createCtr(pod, "app")
}

func TestStopContainerEscalatesToKill(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pod := e.runPod("p")
	// Container whose stop signal is SIGTERM and which ignores it.
	cfg := ctrConfig("term")
	cfg.StopSignal = runtime.Signal_SIGNAL_SIGTERM
	r, err := e.s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	e.s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: r.ContainerId})
	p2 := e.vms.get(pod).proc(r.ContainerId)
	p2.ignoreTerm = true
	start := time.Now()
	if _, err := e.s.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: r.ContainerId, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second || !slices.Equal(p2.signals, []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL}) {
		t.Fatalf("after %v signals %v", d, p2.signals)
	}
	if st := e.ctrStatus(r.ContainerId); st.ExitCode != 137 || st.Reason != "Error" {
		t.Fatalf("status %+v", st)
	}
}

func TestExitReasons(t *testing.T) {
	for _, tc := range []struct {
		es     ExitStatus
		code   int32
		reason string
	}{
		{ExitStatus{Code: 0}, 0, "Completed"},
		{ExitStatus{Code: 3}, 3, "Error"},
		{ExitStatus{Signal: syscall.SIGKILL, OOMKill: true}, 137, "OOMKilled"},
	} {
		e := newEnv(t)
		pod := e.runPod("p")
		cid := e.createCtr(pod, "c")
		e.s.StartContainer(context.Background(), &runtime.StartContainerRequest{ContainerId: cid})
		e.vms.get(pod).proc(cid).exit(tc.es)
		eventually(t, "exit recorded", func() bool { return e.ctrStatus(cid).State == runtime.ContainerState_CONTAINER_EXITED })
		if st := e.ctrStatus(cid); st.ExitCode != tc.code || st.Reason != tc.reason {
			t.Errorf("%+v: code %d reason %q, want %d %q", tc.es, st.ExitCode, st.Reason, tc.code, tc.reason)
		}
	}
}

func TestStartFailureRecordsStartError(t *testing.T) {
	e := newEnv(t)
	pod := e.runPod("p")
	cid := e.createCtr(pod, "c")
	vm := e.vms.get(pod)
	vm.mu.Lock()
	delete(vm.procs, cid) // StartContainer now fails
	vm.mu.Unlock()
	if _, err := e.s.StartContainer(context.Background(), &runtime.StartContainerRequest{ContainerId: cid}); err == nil {
		t.Fatal("start succeeded")
	}
	if st := e.ctrStatus(cid); st.State != runtime.ContainerState_CONTAINER_EXITED || st.Reason != "StartError" || st.ExitCode != 128 || st.Message == "" {
		t.Fatalf("status %+v", st)
	}
}

func TestListContainersFilters(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	p1, p2 := e.runPod("p1"), e.runPod("p2")
	a, b, c := e.createCtr(p1, "a"), e.createCtr(p1, "b"), e.createCtr(p2, "c")
	e.s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: b})
	for _, tc := range []struct {
		name string
		f    *runtime.ContainerFilter
		want []string
	}{
		{"all", nil, []string{a, b, c}},
		{"id prefix", &runtime.ContainerFilter{Id: a[:10]}, []string{a}},
		{"sandbox", &runtime.ContainerFilter{PodSandboxId: p1}, []string{a, b}},
		{"sandbox prefix", &runtime.ContainerFilter{PodSandboxId: p2[:8]}, []string{c}},
		{"running", &runtime.ContainerFilter{State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING}}, []string{b}},
		{"label", &runtime.ContainerFilter{LabelSelector: map[string]string{"ctr": "c"}}, []string{c}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := e.s.ListContainers(ctx, &runtime.ListContainersRequest{Filter: tc.f})
			var got []string
			for _, x := range r.Containers {
				got = append(got, x.Id)
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("got %v want %v", got, want)
			}
			s, _ := e.s.ListContainerStats(ctx, &runtime.ListContainerStatsRequest{Filter: &runtime.ContainerStatsFilter{Id: tc.f.GetId(), PodSandboxId: tc.f.GetPodSandboxId(), LabelSelector: tc.f.GetLabelSelector()}})
			if tc.f.GetState() == nil && len(s.Stats) != len(want) {
				t.Fatalf("stats: %d entries, want %d", len(s.Stats), len(want))
			}
		})
	}
	st, err := e.s.PodSandboxStats(ctx, &runtime.PodSandboxStatsRequest{PodSandboxId: p1})
	if err != nil || len(st.Stats.Linux.Containers) != 2 || st.Stats.Linux.Cpu.UsageCoreNanoSeconds.Value != uint64(time.Second) {
		t.Fatalf("pod stats %+v %v", st, err)
	}
}

func TestExecSync(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pod := e.runPod("p")
	cid := e.createCtr(pod, "c")
	if _, err := e.s.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: cid, Cmd: []string{"true"}}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("exec in created container: %v", err)
	}
	e.s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cid})
	vm := e.vms.get(pod)
	var gotSpec ExecSpec
	vm.ExecFn = func(p *fakeProc, es ExecSpec) {
		gotSpec = es
		if es.Process.Args[0] == "sleep" {
			return // runs until killed
		}
		p.outW.Write([]byte("out"))
		p.errW.Write([]byte(strings.Repeat("e", 100)))
		p.exit(ExitStatus{Code: 2})
	}
	r, err := e.s.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: cid, Cmd: []string{"echo"}})
	if err != nil || string(r.Stdout) != "out" || len(r.Stderr) != 100 || r.ExitCode != 2 {
		t.Fatalf("ExecSync = %+v, %v", r, err)
	}
	if gotSpec.Process.User.UID != 1000 || gotSpec.Process.Terminal || !gotSpec.Stdout {
		t.Fatalf("exec spec %+v", gotSpec.Process)
	}
	_, err = e.s.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: cid, Cmd: []string{"sleep", "10"}, Timeout: 1})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: %v", err)
	}
	if _, err := e.s.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: cid}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("empty cmd: %v", err)
	}
}

func TestCapBuffer(t *testing.T) {
	b := capBuffer{limit: 5}
	n, err := b.Write([]byte("abc"))
	b.Write([]byte("defgh"))
	if n != 3 || err != nil || string(b.Bytes()) != "abcde" {
		t.Fatalf("%q", b.Bytes())
	}
}

func TestStreamingURLs(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pod := e.runPod("p")
	cid := e.createCtr(pod, "c")
	if _, err := e.s.Exec(ctx, &runtime.ExecRequest{ContainerId: cid, Cmd: []string{"sh"}, Stdout: true}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("exec before start: %v", err)
	}
	e.s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cid})
	if r, err := e.s.Exec(ctx, &runtime.ExecRequest{ContainerId: cid[:12], Cmd: []string{"sh"}, Stdout: true}); err != nil || !strings.HasSuffix(r.Url, cid) {
		t.Fatalf("exec: %v %v", r, err)
	}
	if _, err := e.s.Exec(ctx, &runtime.ExecRequest{ContainerId: cid, Cmd: []string{"sh"}, Tty: true, Stderr: true}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("tty+stderr: %v", err)
	}
	if r, err := e.s.Attach(ctx, &runtime.AttachRequest{ContainerId: cid, Stdout: true}); err != nil || r.Url == "" {
		t.Fatalf("attach: %v %v", r, err)
	}
	if r, err := e.s.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: pod, Port: []int32{80}}); err != nil || !strings.HasSuffix(r.Url, pod) {
		t.Fatalf("portforward: %v %v", r, err)
	}
	if _, err := e.s.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: pod, Port: []int32{0}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad port: %v", err)
	}
}

func TestUpdateContainerResources(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pod := e.runPod("p")
	cid := e.createCtr(pod, "c")
	res := &runtime.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 64 << 20}
	if _, err := e.s.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: cid, Linux: res}); err != nil {
		t.Fatal(err)
	}
	if st := e.ctrStatus(cid); st.Resources.Linux.MemoryLimitInBytes != 64<<20 {
		t.Fatalf("resources %+v", st.Resources)
	}
	if _, err := e.s.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: cid, Linux: &runtime.LinuxContainerResources{CpuPeriod: 1}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad period: %v", err)
	}
}

func TestPodPIDNamespaceShared(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pod := e.runPod("p")
	mk := func(name string) *specs.Spec {
		cfg := ctrConfig(name)
		cfg.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}
		r, err := e.s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		e.s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: r.ContainerId})
		return e.vms.get(pod).containers[r.ContainerId]
	}
	pidNS := func(s *specs.Spec) string {
		for _, n := range s.Linux.Namespaces {
			if n.Type == specs.PIDNamespace {
				return n.Path
			}
		}
		return "none"
	}
	// Both join the pod's namespace, held by a process in the guest: the
	// first container is not its PID 1.
	first, second := mk("a"), mk("b")
	if pidNS(first) != "/proc/4242/ns/pid" || pidNS(second) != "/proc/4242/ns/pid" {
		t.Fatalf("pid ns %q then %q", pidNS(first), pidNS(second))
	}
	b, _ := json.Marshal(second)
	if !strings.Contains(string(b), "/run/podvisor/net/resolv.conf") {
		t.Fatal("resolv.conf not bind-mounted from the guest")
	}
}

// TestCreateContainerOutlivesCaller: the creation goes on after the caller
// gave up; a retry during it returns the same container, one after it is
// AlreadyExists naming it.
func TestCreateContainerOutlivesCaller(t *testing.T) {
	e := newEnv(t)
	pod := e.runPod("p")
	release := make(chan struct{})
	e.vms.get(pod).CreateFn = func(ContainerSpec) error { <-release; return nil }
	req := &runtime.CreateContainerRequest{PodSandboxId: pod, Config: ctrConfig("c")}
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := e.s.CreateContainer(short, req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	retry := make(chan string)
	go func() {
		r, err := e.s.CreateContainer(context.Background(), req)
		if err != nil {
			t.Errorf("retry during creation: %v", err)
			retry <- ""
			return
		}
		retry <- r.ContainerId
	}()
	time.Sleep(10 * time.Millisecond)
	close(release)
	id := <-retry
	if st := e.ctrStatus(id); st.State != runtime.ContainerState_CONTAINER_CREATED {
		t.Fatalf("state %v", st.State)
	}
	if n := len(e.s.containers.List()); n != 1 {
		t.Fatalf("%d containers, want 1", n)
	}
	if _, err := e.s.CreateContainer(context.Background(), req); !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), id) {
		t.Fatalf("retry after creation: %v", err)
	}
}

// TestStartContainerOutlivesCaller: a start the caller gave up on
// completes, so the status matches the guest.
func TestStartContainerOutlivesCaller(t *testing.T) {
	e := newEnv(t)
	pod := e.runPod("p")
	cid := e.createCtr(pod, "c")
	release := make(chan struct{})
	e.vms.get(pod).StartFn = func(ctx context.Context, _ string) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := e.s.StartContainer(short, &runtime.StartContainerRequest{ContainerId: cid}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	retry := make(chan error)
	go func() {
		_, err := e.s.StartContainer(context.Background(), &runtime.StartContainerRequest{ContainerId: cid})
		retry <- err
	}()
	time.Sleep(10 * time.Millisecond)
	close(release)
	if err := <-retry; err != nil {
		t.Fatalf("retry during start: %v", err)
	}
	if st := e.ctrStatus(cid); st.State != runtime.ContainerState_CONTAINER_RUNNING || st.StartedAt == 0 {
		t.Fatalf("status %+v", st)
	}
	if _, err := e.s.StartContainer(context.Background(), &runtime.StartContainerRequest{ContainerId: cid}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("start after start: %v", err)
	}
}

// TestStopContainerWithoutProcess: a running container whose process was
// lost stops with exit code 255 and reason Unknown, never 0.
func TestStopContainerWithoutProcess(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pod := e.runPod("p")
	cid := e.createCtr(pod, "c")
	e.s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cid})
	e.s.mu.Lock()
	delete(e.s.tasks, cid)
	e.s.mu.Unlock()
	if _, err := e.s.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: cid}); err != nil {
		t.Fatal(err)
	}
	if st := e.ctrStatus(cid); st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 255 || st.Reason != "Unknown" || st.FinishedAt == 0 {
		t.Fatalf("status %+v", st)
	}
}

func TestContainerStatusStopSignal(t *testing.T) {
	e := newEnv(t)
	pod := e.runPod("p")
	for _, tc := range []struct {
		name string
		cfg  runtime.Signal
		want runtime.Signal
	}{
		{"image's", runtime.Signal_SIGNAL_RUNTIME_DEFAULT, runtime.Signal_SIGNAL_SIGQUIT}, // busybox fake: SIGQUIT
		{"config's", runtime.Signal_SIGNAL_SIGUSR1, runtime.Signal_SIGNAL_SIGUSR1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ctrConfig("sig-" + strings.ReplaceAll(tc.name, "'", ""))
			cfg.StopSignal = tc.cfg
			r, err := e.s.CreateContainer(context.Background(), &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg})
			if err != nil {
				t.Fatal(err)
			}
			if got := e.ctrStatus(r.ContainerId).StopSignal; got != tc.want {
				t.Fatalf("stop signal %v, want %v", got, tc.want)
			}
		})
	}
	if got := effectiveStopSignal("15", runtime.Signal_SIGNAL_RUNTIME_DEFAULT); got != runtime.Signal_SIGNAL_SIGTERM {
		t.Fatalf("numeric: %v", got)
	}
	if got := effectiveStopSignal("bogus", runtime.Signal_SIGNAL_SIGINT); got != runtime.Signal_SIGNAL_SIGINT {
		t.Fatalf("unparsable: %v", got)
	}
}

func TestExecSyncCallerGone(t *testing.T) {
	e := newEnv(t)
	pod := e.runPod("p")
	cid := e.createCtr(pod, "c")
	e.s.StartContainer(context.Background(), &runtime.StartContainerRequest{ContainerId: cid})
	e.vms.get(pod).ExecFn = func(*fakeProc, ExecSpec) {} // runs until killed
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	// The caller's deadline is not the request's timeout: no "timeout
	// exceeded" message, but the caller's own error.
	_, err := e.s.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: cid, Cmd: []string{"sleep"}, Timeout: 10})
	if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timeout 10s exceeded") {
		t.Fatalf("err = %v", err)
	}
}

func TestAttachNeedsAStream(t *testing.T) {
	e := newEnv(t)
	pod := e.runPod("p")
	cid := e.createCtr(pod, "c")
	e.s.StartContainer(context.Background(), &runtime.StartContainerRequest{ContainerId: cid})
	if _, err := e.s.Attach(context.Background(), &runtime.AttachRequest{ContainerId: cid}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("attach without streams: %v", err)
	}
}

// TestImageVolume mounts a pulled image read-only into a container: the OCI
// spec gets a read-only bind of the shared image, ContainerStatus names the
// image's ID (also after a restart), and the image is in use until the
// container is removed.
func TestImageVolume(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	img, err := e.images.Pull(ctx, "registry.test/data:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	pod := e.runPod("p")
	cfg := ctrConfig("app")
	cfg.Mounts = []*runtime.Mount{{ContainerPath: "/data", Readonly: true,
		Image: &runtime.ImageSpec{Image: "registry.test/data:1", UserSpecifiedImage: "registry.test/data:1"}, ImageSubPath: "etc"}}
	r, err := e.s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podConfig("p")})
	if err != nil {
		t.Fatal(err)
	}
	cid := r.ContainerId
	var found bool
	for _, m := range e.vms.get(pod).containers[cid].Mounts {
		if m.Destination != "/data" {
			continue
		}
		found = true
		if m.Source != "/run/podvisor/shared/images/"+cid+"/var/lib/podvisor/images/layers/a/etc" || !slices.Contains(m.Options, "ro") {
			t.Fatalf("image volume in the OCI spec: %+v", m)
		}
	}
	if !found {
		t.Fatal("no image volume in the OCI spec")
	}
	check := func() {
		t.Helper()
		ms := e.ctrStatus(cid).Mounts
		if len(ms) != 1 || ms[0].GetImage().GetImageRef() != img.ID || ms[0].ImageSubPath != "etc" || !ms[0].Readonly {
			t.Fatalf("status mounts %+v, want the image volume with image_ref %s", ms, img.ID)
		}
	}
	check()
	if !e.s.ImageInUse(img.ID) {
		t.Fatal("image of an image volume not in use")
	}
	e.reopen()
	check()
	if _, err := e.s.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: cid}); err != nil {
		t.Fatal(err)
	}
	if e.s.ImageInUse(img.ID) {
		t.Fatal("image still in use after the container's removal")
	}
}

// TestReadonlyVolumeSubmounts: a non-recursive read-only volume binds each
// of its submounts after it, without "ro", so they keep their own flags; a
// recursive read-only or writable volume does not.
func TestReadonlyVolumeSubmounts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pod := e.runPod("p")
	host := filepath.Join(t.TempDir(), "vol-with-sub")
	if err := os.Mkdir(host, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		ro, rro bool
		want    int
	}{{true, false, 1}, {true, true, 0}, {false, false, 0}} {
		cfg := ctrConfig(fmt.Sprintf("c%d", i))
		cfg.Mounts = []*runtime.Mount{{ContainerPath: "/mnt", HostPath: host, Readonly: c.ro, RecursiveReadOnly: c.rro}}
		r, err := e.s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podConfig("p")})
		if err != nil {
			t.Fatal(err)
		}
		var subs []specs.Mount
		parent := -1
		for j, m := range e.vms.get(pod).containers[r.ContainerId].Mounts {
			switch m.Destination {
			case "/mnt":
				parent = j
			case "/mnt/sub":
				if parent < 0 || j < parent {
					t.Errorf("%+v: submount bound before its volume", c)
				}
				subs = append(subs, m)
			}
		}
		if len(subs) != c.want {
			t.Fatalf("%+v: %d submount binds, want %d", c, len(subs), c.want)
		}
		for _, m := range subs {
			if slices.Contains(m.Options, "ro") || !strings.HasSuffix(m.Source, "/vol-with-sub/sub") {
				t.Errorf("submount bind %+v", m)
			}
		}
	}
}
