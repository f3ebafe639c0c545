package agent

import (
	"context"
	"fmt"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// InspectProcess describes one process, with its full arguments.
func (s *Service) InspectProcess(ctx context.Context, req *agentpb.InspectProcessRequest) (*agentpb.ProcessInfo, error) {
	if err := validateID(req.GetId()); err != nil {
		return nil, toStatus(fmt.Errorf("inspect process: %w", err))
	}
	p, err := s.procs.get(req.GetId())
	if err != nil {
		return nil, toStatus(fmt.Errorf("inspect process: %w", err))
	}
	return p.info(false), nil
}
