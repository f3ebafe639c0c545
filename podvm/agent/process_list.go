package agent

import (
	"context"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// ListProcesses lists the processes not yet removed, ordered by id, with
// their arguments abbreviated (see InspectProcess for the full list).
func (s *Service) ListProcesses(ctx context.Context, _ *agentpb.Empty) (*agentpb.ListProcessesResponse, error) {
	procs := s.procs.list()
	resp := &agentpb.ListProcessesResponse{Processes: make([]*agentpb.ProcessInfo, 0, len(procs))}
	for _, p := range procs {
		resp.Processes = append(resp.Processes, p.info(true))
	}
	return resp, nil
}
