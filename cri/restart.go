package cri

import (
	"context"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/cri/store/container"
	"github.com/podvisor/podvisor/cri/store/sandbox"
)

// restoreTimeout bounds re-attaching to one VM at start-up.
const restoreTimeout = 30 * time.Second

// restore rebuilds the in-memory state from the stores after a restart:
// names are reserved again, ready sandboxes re-attached to their VMs (a VM
// that is gone leaves its sandbox not ready), and created or running
// containers re-attached to their init processes (a process that is gone
// is recorded as exited with reason Unknown).
func (s *Service) restore(ctx context.Context) {
	for _, sb := range s.sandboxes.List() {
		s.sandboxNames.Reserve(sb.Metadata.Name, sb.ID)
		s.sandboxNames.Commit(sb.Metadata.Name, sb.ID)
		if sb.Status.State != sandbox.StateReady {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, restoreTimeout)
		vm, err := s.b.VMs.Reattach(rctx, sb.ID)
		cancel()
		if err != nil {
			klog.InfoS("Pod VM not found after restart: sandbox not ready", "podSandboxID", sb.ID, "err", err)
			s.sandboxes.Update(sb.ID, func(st sandbox.Status) (sandbox.Status, error) {
				st.State, st.Reason = sandbox.StateNotReady, "pod VM lost across a podvisor restart"
				return st, nil
			})
			continue
		}
		s.vms[sb.ID] = vm
		go s.watchVM(sb.ID, vm)
		klog.InfoS("Re-attached to pod VM", "podSandboxID", sb.ID)
	}
	for _, c := range s.containers.List() {
		s.containerNames.Reserve(c.Metadata.Name, c.ID)
		s.containerNames.Commit(c.Metadata.Name, c.ID)
		if c.Status.State != container.StateRunning && c.Status.State != container.StateCreated {
			continue
		}
		s.restoreContainer(ctx, c)
	}
	s.removeLeftovers(ctx)
}

// removeLeftovers removes the VMs and pod networks of sandboxes the store
// does not know: a RunPodSandbox interrupted by a crash records its sandbox
// only once the pod is up, so what it had built is found here.
func (s *Service) removeLeftovers(ctx context.Context) {
	var keep []string
	for _, sb := range s.sandboxes.List() {
		keep = append(keep, sb.ID)
	}
	rctx, cancel := context.WithTimeout(ctx, restoreTimeout)
	defer cancel()
	if err := s.b.VMs.RemoveOthers(rctx, keep); err != nil {
		klog.ErrorS(err, "Removing pod VMs left by an interrupted boot")
	}
	if err := s.b.Network.RemoveOthers(rctx, keep); err != nil {
		klog.ErrorS(err, "Removing pod networks left by an interrupted boot")
	}
}

func (s *Service) restoreContainer(ctx context.Context, c container.Container) {
	markLost := func(err error) {
		klog.InfoS("Container lost across a restart", "containerID", c.ID, "err", err)
		s.containers.Update(c.ID, func(st container.Status) (container.Status, error) {
			st.State, st.FinishedAt, st.ExitCode, st.Reason = container.StateExited, time.Now(), unknownExitCode, "Unknown"
			st.Starting = false
			return st, nil
		})
		s.emit(c.ID, c.Metadata.SandboxID, runtime.ContainerEventType_CONTAINER_STOPPED_EVENT)
	}
	vm, ok := s.vms[c.Metadata.SandboxID]
	if !ok {
		markLost(nil)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, restoreTimeout)
	defer cancel()
	proc, err := vm.Process(rctx, c.ID)
	if err != nil {
		markLost(err)
		return
	}
	var lw LogWriter
	if c.Metadata.LogPath != "" {
		if lw, err = s.b.Logs.Open(c.Metadata.LogPath); err != nil {
			klog.ErrorS(err, "Reopening container log after restart", "containerID", c.ID)
		}
	}
	if c.Status.Starting {
		s.containers.Update(c.ID, func(st container.Status) (container.Status, error) {
			st.Starting = false
			return st, nil
		})
	}
	s.tasks[c.ID] = &task{id: c.ID, sandboxID: c.Metadata.SandboxID, proc: proc, io: newContainerIO(c.ID, proc, lw), exited: make(chan struct{})}
	go s.waitTask(s.tasks[c.ID])
}
