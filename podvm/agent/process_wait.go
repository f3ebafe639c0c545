package agent

import (
	"context"
	"fmt"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// WaitProcess waits until the process has exited and its output has been
// copied out, or until the request ends.
func (s *Service) WaitProcess(ctx context.Context, req *agentpb.WaitProcessRequest) (*agentpb.WaitProcessResponse, error) {
	if err := validateID(req.GetId()); err != nil {
		return nil, toStatus(fmt.Errorf("wait process: %w", err))
	}
	p, err := s.procs.get(req.GetId())
	if err != nil {
		return nil, toStatus(fmt.Errorf("wait process: %w", err))
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return nil, toStatus(fmt.Errorf("wait process %q: %w", p.id, ctx.Err()))
	}
	e, _ := p.exitStatus()
	return &agentpb.WaitProcessResponse{
		ExitCode:        int32(e.ExitCode()),
		Signal:          int32(e.Signal()),
		StartedUnixNano: p.started.UnixNano(),
		ExitedUnixNano:  e.Time.UnixNano(),
	}, nil
}
