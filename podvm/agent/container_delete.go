package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// deleteExitTimeout bounds the wait for a killed init process's exit.
const deleteExitTimeout = 10 * time.Second

// DeleteContainer runs `runc delete --force` (killing the container if it
// still runs), removes the bundle and forgets the init process, so that the
// id can be used again (kubelet restarts a container under a new id, but a
// retried create may reuse one). Deleting an unknown container succeeds and
// still clears anything runc or a bundle left under that id.
//
// Processes exec'd in the container die with it (its PID namespace ends)
// but stay in the process table, with their exit status, until the host
// removes them.
func (s *Service) DeleteContainer(ctx context.Context, req *agentpb.DeleteContainerRequest) (*agentpb.Empty, error) {
	if err := s.deleteContainer(ctx, req); err != nil {
		return nil, toStatus(fmt.Errorf("delete container: %w", err))
	}
	klog.InfoS("Deleted container", "containerID", req.GetId())
	return &agentpb.Empty{}, nil
}

func (s *Service) deleteContainer(ctx context.Context, req *agentpb.DeleteContainerRequest) error {
	id := req.GetId()
	if err := validateID(id); err != nil {
		return err
	}
	c, err := s.containers.get(id)
	if err != nil && !isNotFound(err) {
		return err
	}
	if _, err := s.runRunc(ctx, nil, "delete", "--force", id); err != nil && !isNotFound(err) {
		return err
	}
	if c != nil {
		if err := s.forgetInit(ctx, c); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(filepath.Join(s.cfg.Containers.bundleDir(), id)); err != nil {
		return fmt.Errorf("remove bundle: %w", err)
	}
	if c != nil {
		s.containers.remove(c)
	}
	return nil
}

// forgetInit waits for the killed init process's exit and removes it from
// the process table (the host may have removed it already).
func (s *Service) forgetInit(ctx context.Context, c *container) error {
	select {
	case <-c.init.exited:
	case <-time.After(deleteExitTimeout):
		return fmt.Errorf("container %q: init process %d did not exit after runc delete --force", c.id, c.init.pid)
	case <-ctx.Done():
		return ctx.Err()
	}
	_, err := s.procs.remove(c.id, func(p *process) error {
		if p != c.init {
			return fmt.Errorf("id %q now names another process: %w", c.id, ErrFailedPrecondition)
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.init.io.abort()
	return nil
}
