package cri

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/cri/errdefs"
)

// RemovePodSandbox stops the sandbox if needed, removes its containers and
// forgets it. Removing an unknown sandbox succeeds.
func (s *Service) RemovePodSandbox(ctx context.Context, r *runtime.RemovePodSandboxRequest) (*runtime.RemovePodSandboxResponse, error) {
	if r.PodSandboxId == "" {
		return nil, invalid("pod_sandbox_id", "is empty")
	}
	sb, err := s.sandboxes.Get(r.PodSandboxId)
	if errdefs.IsNotFound(err) {
		return &runtime.RemovePodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	unlock := s.sandboxLocks.lock(sb.ID)
	defer unlock()
	if err := s.stopSandbox(ctx, sb.ID); err != nil {
		return nil, fmt.Errorf("remove pod sandbox %s: %w", sb.ID, err)
	}
	for _, c := range s.podContainers(sb.ID) {
		if err := s.removeContainer(ctx, c.ID); err != nil {
			return nil, fmt.Errorf("remove pod sandbox %s: remove container %s: %w", sb.ID, c.ID, err)
		}
	}
	var last *runtime.PodSandboxStatus
	if cur, err := s.sandboxes.Get(sb.ID); err == nil {
		last = s.sandboxStatus(cur)
		sb = cur
	}
	unblock := s.nri.blockSync()
	defer unblock()
	if err := s.sandboxes.Delete(sb.ID); err != nil {
		if errdefs.IsNotFound(err) {
			return &runtime.RemovePodSandboxResponse{}, nil // a concurrent remove won
		}
		return nil, fmt.Errorf("remove pod sandbox %s: %w", sb.ID, err)
	}
	s.nri.removePodSandbox(context.WithoutCancel(ctx), nriPod(sb))
	s.sandboxNames.Release(sb.Metadata.Name, sb.ID)
	klog.InfoS("Pod sandbox removed", "podSandboxID", sb.ID)
	s.publishEvent(sb.ID, sb.ID, runtime.ContainerEventType_CONTAINER_DELETED_EVENT, last)
	return &runtime.RemovePodSandboxResponse{}, nil
}
