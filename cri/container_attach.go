package cri

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Attach returns the streaming URL for attaching to a container.
func (s *Service) Attach(_ context.Context, r *runtime.AttachRequest) (*runtime.AttachResponse, error) {
	if err := validateStreams(r.Tty, r.Stdin, r.Stdout, r.Stderr); err != nil {
		return nil, err
	}
	c, err := s.runningContainer(r.ContainerId)
	if err != nil {
		return nil, fmt.Errorf("attach: %w", err)
	}
	streams, err := s.streams()
	if err != nil {
		return nil, err
	}
	r.ContainerId = c.ID
	return streams.GetAttach(r)
}
