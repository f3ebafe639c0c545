package agent

import (
	"context"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// ListContainers lists the containers created and not deleted, with the
// status the agent knows from their init process (no runc call).
func (s *Service) ListContainers(ctx context.Context, _ *agentpb.Empty) (*agentpb.ListContainersResponse, error) {
	resp := &agentpb.ListContainersResponse{}
	for _, c := range s.containers.list() {
		resp.Containers = append(resp.Containers, &agentpb.ContainerInfo{
			Id:          c.id,
			Pid:         int32(c.init.pid),
			Status:      c.status(),
			CgroupsPath: c.cgroup,
		})
	}
	return resp, nil
}
