package cri

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
)

// ReopenContainerLog reopens a running container's log file after kubelet
// rotated it.
func (s *Service) ReopenContainerLog(_ context.Context, r *runtime.ReopenContainerLogRequest) (*runtime.ReopenContainerLogResponse, error) {
	c, err := s.runningContainer(r.ContainerId)
	if err != nil {
		return nil, fmt.Errorf("reopen container log: %w", err)
	}
	t, ok := s.task(c.ID)
	if !ok || t.io.log == nil {
		return nil, fmt.Errorf("reopen container log: container %s has no log file: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	if err := t.io.log.Reopen(); err != nil {
		return nil, fmt.Errorf("reopen container log %s: %w", c.ID, err)
	}
	return &runtime.ReopenContainerLogResponse{}, nil
}
