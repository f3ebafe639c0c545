package cri

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
	"github.com/podvisor/podvisor/cri/store/container"
)

// Exec returns the streaming URL for an exec session.
func (s *Service) Exec(_ context.Context, r *runtime.ExecRequest) (*runtime.ExecResponse, error) {
	if len(r.Cmd) == 0 {
		return nil, invalid("cmd", "is empty")
	}
	if err := validateStreams(r.Tty, r.Stdin, r.Stdout, r.Stderr); err != nil {
		return nil, err
	}
	c, err := s.runningContainer(r.ContainerId)
	if err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	streams, err := s.streams()
	if err != nil {
		return nil, err
	}
	r.ContainerId = c.ID
	return streams.GetExec(r)
}

func (s *Service) runningContainer(id string) (container.Container, error) {
	if id == "" {
		return container.Container{}, invalid("container_id", "is empty")
	}
	c, err := s.containers.Get(id)
	if err != nil {
		return c, err
	}
	if c.Status.State != container.StateRunning {
		return c, fmt.Errorf("container %s is %s, not running: %w", c.ID, c.Status.State, errdefs.ErrFailedPrecondition)
	}
	return c, nil
}

func (s *Service) streams() (StreamServer, error) {
	if s.b.Streams == nil {
		return nil, fmt.Errorf("streaming server: %w", errdefs.ErrUnavailable)
	}
	return s.b.Streams, nil
}

// validateStreams checks the streams an exec or attach asks for, as
// kubelet's streaming server would: at least one, and no stderr with a tty.
func validateStreams(tty, stdin, stdout, stderr bool) error {
	if tty && stderr {
		return invalid("stderr", "cannot be requested with tty")
	}
	if !stdin && !stdout && !stderr {
		return invalid("stdin", "one of stdin, stdout and stderr must be requested")
	}
	return nil
}
