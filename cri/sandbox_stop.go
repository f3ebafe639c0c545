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
	for _, c := range s.containers.List() {
		if c.Metadata.SandboxID != id {
			continue
		}
		if err := s.stopContainer(ctx, c.ID, 0); err != nil {
			return fmt.Errorf("stop container %s: %w", c.ID, err)
		}
	}
	s.mu.Lock()
	vm := s.vms[id]
	delete(s.vms, id)
	s.mu.Unlock()
	if vm != nil {
		if err := vm.Stop(ctx); err != nil {
			return fmt.Errorf("stop pod VM: %w", err)
		}
	}
	sb, err := s.sandboxes.Get(id)
	if err != nil {
		return err
	}
	if !sb.Status.NetworkDown {
		if err := s.b.Network.Teardown(ctx, id); err != nil {
			return fmt.Errorf("tear down pod network: %w", err)
		}
	}
	_, err = s.sandboxes.Update(id, func(st sandbox.Status) (sandbox.Status, error) {
		if st.State == sandbox.StateReady {
			st.Reason = "stopped"
		}
		st.State, st.NetworkDown = sandbox.StateNotReady, true
		return st, nil
	})
	if err == nil && vm != nil {
		klog.InfoS("Pod sandbox stopped", "podSandboxID", id)
	}
	return err
}

// stopTimeout converts a CRI stop timeout in seconds.
func stopTimeout(sec int64) time.Duration {
	if sec <= 0 {
		return 0
	}
	return time.Duration(sec) * time.Second
}
