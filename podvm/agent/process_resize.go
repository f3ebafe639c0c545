package agent

import (
	"context"
	"fmt"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// ResizeTTY sets the window size of a process's terminal. Resizing the
// terminal of a process that has just exited is not an error: the host
// cannot avoid that race.
func (s *Service) ResizeTTY(ctx context.Context, req *agentpb.ResizeTTYRequest) (*agentpb.Empty, error) {
	if err := s.resizeTTY(req); err != nil {
		return nil, toStatus(fmt.Errorf("resize tty: %w", err))
	}
	return &agentpb.Empty{}, nil
}

func (s *Service) resizeTTY(req *agentpb.ResizeTTYRequest) error {
	if err := validateID(req.GetId()); err != nil {
		return err
	}
	if err := validateWinsize(req.GetRows(), req.GetCols()); err != nil {
		return err
	}
	p, err := s.procs.get(req.GetId())
	if err != nil {
		return err
	}
	if !p.terminal {
		return fmt.Errorf("process %q has no terminal: %w", p.id, ErrFailedPrecondition)
	}
	if err := p.io.resize(req.GetRows(), req.GetCols()); err != nil && !p.isDone() {
		return fmt.Errorf("process %q: %w", p.id, err)
	}
	// Once the process is done its pty is closed: see above.
	return nil
}
