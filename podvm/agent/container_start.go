package agent

import (
	"context"
	"fmt"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// StartContainer runs `runc start`: the container's init process executes
// the user's program.
func (s *Service) StartContainer(ctx context.Context, req *agentpb.StartContainerRequest) (*agentpb.Empty, error) {
	if err := s.startContainer(ctx, req); err != nil {
		return nil, toStatus(fmt.Errorf("start container: %w", err))
	}
	klog.InfoS("Started container", "containerID", req.GetId())
	return &agentpb.Empty{}, nil
}

func (s *Service) startContainer(ctx context.Context, req *agentpb.StartContainerRequest) error {
	if err := validateID(req.GetId()); err != nil {
		return err
	}
	c, err := s.containers.get(req.GetId())
	if err != nil {
		return err
	}
	if c.init.hasExited() {
		return fmt.Errorf("container %q has exited: %w", c.id, ErrFailedPrecondition)
	}
	if _, err := s.runRunc(ctx, nil, "start", c.id); err != nil {
		return err
	}
	c.started.Store(true)
	return nil
}
