package cri

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
	"github.com/podvisor/podvisor/cri/store/sandbox"
)

// PortForward returns the streaming URL for forwarding ports of a pod.
func (s *Service) PortForward(_ context.Context, r *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	if r.PodSandboxId == "" {
		return nil, invalid("pod_sandbox_id", "is empty")
	}
	for i, p := range r.Port {
		if p < 1 || p > 65535 {
			return nil, invalid(fmt.Sprintf("port[%d]", i), "%d out of range 1-65535", p)
		}
	}
	sb, err := s.sandboxes.Get(r.PodSandboxId)
	if err != nil {
		return nil, fmt.Errorf("port forward: %w", err)
	}
	if sb.Status.State != sandbox.StateReady {
		return nil, fmt.Errorf("port forward: pod sandbox %s is not ready: %w", sb.ID, errdefs.ErrFailedPrecondition)
	}
	streams, err := s.streams()
	if err != nil {
		return nil, err
	}
	r.PodSandboxId = sb.ID
	return streams.GetPortForward(r)
}
