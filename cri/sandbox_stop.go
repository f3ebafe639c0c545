package cri

import (
	"context"
	"fmt"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/cri/errdefs"
	"github.com/podvisor/podvisor/cri/store/sandbox"
)

// StopPodSandbox kills the pod's containers, powers its VM off and tears
// its network down. Stopping an unknown or stopped sandbox succeeds.
func (s *Service) StopPodSandbox(ctx context.Context, r *runtime.StopPodSandboxRequest) (*runtime.StopPodSandboxResponse, error) {
	if r.PodSandboxId == "" {
		return nil, invalid("pod_sandbox_id", "is empty")
	}
	sb, err := s.sandboxes.Get(r.PodSandboxId)
	if errdefs.IsNotFound(err) {
		return &runtime.StopPodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	unlock := s.sandboxLocks.lock(sb.ID)
	defer unlock()
	if err := s.stopSandbox(ctx, sb.ID); err != nil {
		return nil, fmt.Errorf("stop pod sandbox %s: %w", sb.ID, err)
	}
	return &runtime.StopPodSandboxResponse{}, nil
}

// stopSandbox is StopPodSandbox under the sandbox lock.
func (s *Service) stopSandbox(ctx context.Context, id string) error {
	for _, c := range s.podContainers(id) {
		if err := s.stopContainer(ctx, c.ID, 0); err != nil {
			return fmt.Errorf("stop container %s: %w", c.ID, err)
		}
	}
	// Plugins hear of the stop with the pod's containers stopped and its
	// VM still there.
	s.notifySandboxStopped(ctx, id)
	s.mu.Lock()
	vm := s.vms[id]
	delete(s.vms, id) // from here on, its exit is not a loss (watchVM)
	s.mu.Unlock()
	if vm != nil {
		// A caller that gives up must not abort a power-off halfway: the
		// stop is bounded by the VM's own stop timeout, not the request.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.PodVM.StopTimeout.Std()+vmStopMargin)
		err := vm.Stop(sctx)
		cancel()
		if err != nil {
			s.mu.Lock()
			if _, ok := s.vms[id]; !ok {
				s.vms[id] = vm // a retry stops it again
			}
			s.mu.Unlock()
			return fmt.Errorf("stop pod VM: %w", err)
		}
	}
	// Not ready as soon as the VM is gone, even if the network teardown
	// below fails (a retry finishes it).
	stopped := false
	sb, err := s.sandboxes.Update(id, func(st sandbox.Status) (sandbox.Status, error) {
		if stopped = st.State == sandbox.StateReady; stopped {
			st.State, st.Reason = sandbox.StateNotReady, "stopped"
		}
		return st, nil
	})
	if errdefs.IsNotFound(err) {
		return nil // removed while we waited for the sandbox lock
	}
	if err != nil {
		return err
	}
	if stopped {
		klog.InfoS("Pod sandbox stopped", "podSandboxID", id)
		s.emit(id, id, runtime.ContainerEventType_CONTAINER_STOPPED_EVENT)
	}
	if sb.NetworkDown {
		return nil
	}
	// Likewise, CNI DEL runs to its end once started.
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	err = s.b.Network.Teardown(tctx, id)
	cancel()
	if err != nil {
		return fmt.Errorf("tear down pod network: %w", err)
	}
	_, err = s.sandboxes.Update(id, func(st sandbox.Status) (sandbox.Status, error) {
		st.NetworkDown = true
		return st, nil
	})
	return err
}

// vmStopMargin is added to the VM's stop timeout (guest power-off, then
// kill) to bound a StopPodSandbox's VM stop.
const vmStopMargin = 30 * time.Second

// stopTimeout converts a CRI stop timeout in seconds.
func stopTimeout(sec int64) time.Duration {
	if sec <= 0 {
		return 0
	}
	return time.Duration(sec) * time.Second
}
