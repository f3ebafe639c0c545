package cri

import (
	"context"
	"errors"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
)

func TestRestartRebuildsState(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pod := e.runPod("p")
	running := e.createCtr(pod, "running")
	created := e.createCtr(pod, "created")
	exited := e.createCtr(pod, "exited")
	e.s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: running})
	e.s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: exited})
	e.s.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: exited})

	e.reopen()

	st, err := e.s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: pod})
	if err != nil || st.Status.State != runtime.PodSandboxState_SANDBOX_READY || st.Status.Network.Ip != "10.88.0.2" {
		t.Fatalf("sandbox after restart: %+v %v", st, err)
	}
	for id, want := range map[string]runtime.ContainerState{
		running: runtime.ContainerState_CONTAINER_RUNNING,
		created: runtime.ContainerState_CONTAINER_CREATED,
		exited:  runtime.ContainerState_CONTAINER_EXITED,
	} {
		if got := e.ctrStatus(id).State; got != want {
			t.Errorf("%s: %v, want %v", id[:8], got, want)
		}
	}
	// Names are reserved again.
	if _, err := e.s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: ctrConfig("running")}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("name after restart: %v", err)
	}
	// The re-attached process is watched: its exit is recorded.
	e.vms.get(pod).proc(running).exit(ExitStatus{Code: 0})
	eventually(t, "exit after restart", func() bool { return e.ctrStatus(running).State == runtime.ContainerState_CONTAINER_EXITED })
	if e.ctrStatus(running).Reason != "Completed" {
		t.Fatal(e.ctrStatus(running).Reason)
	}
	// And the sandbox can be stopped and removed as usual.
	if _, err := e.s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
}

func TestRestartWithLostVM(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pod := e.runPod("p")
	cid := e.createCtr(pod, "c")
	e.s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cid})
	e.vms.lostOnRe = true
	e.reopen()
	st, _ := e.s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: pod})
	if st.Status.State != runtime.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("sandbox %v", st.Status.State)
	}
	if cs := e.ctrStatus(cid); cs.State != runtime.ContainerState_CONTAINER_EXITED || cs.Reason != "Unknown" {
		t.Fatalf("container %+v", cs)
	}
	if _, err := e.s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
}

// TestRestartRemovesLeftovers checks that a VM and a pod network no
// sandbox record owns (a boot interrupted by a crash) are removed at
// start-up, and that those of known sandboxes are kept.
func TestRestartRemovesLeftovers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pod := e.runPod("p")
	orphanNet, err := e.net.Setup(ctx, NetworkRequest{SandboxID: "orphan"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.vms.Boot(ctx, VMSpec{SandboxID: "orphan", Network: orphanNet}); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	if e.vms.get("orphan") != nil {
		t.Error("VM of an unknown sandbox survived the restart")
	}
	if e.vms.get(pod) == nil {
		t.Error("VM of a known sandbox was removed")
	}
	e.net.mu.Lock()
	defer e.net.mu.Unlock()
	if e.net.setups["orphan"] {
		t.Error("network of an unknown sandbox survived the restart")
	}
	if !e.net.setups[pod] {
		t.Error("network of a known sandbox was removed")
	}
}
