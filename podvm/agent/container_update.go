package agent

import (
	"context"
	"encoding/json"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// UpdateContainerResources runs `runc update --resources -` with the
// validated resources.
func (s *Service) UpdateContainerResources(ctx context.Context, req *agentpb.UpdateContainerResourcesRequest) (*agentpb.Empty, error) {
	if err := s.updateContainerResources(ctx, req); err != nil {
		return nil, toStatus(fmt.Errorf("update container resources: %w", err))
	}
	klog.InfoS("Updated container resources", "containerID", req.GetId())
	return &agentpb.Empty{}, nil
}

func (s *Service) updateContainerResources(ctx context.Context, req *agentpb.UpdateContainerResourcesRequest) error {
	if err := validateID(req.GetId()); err != nil {
		return err
	}
	var res specs.LinuxResources
	if err := decodeStrict("linux_resources", req.GetLinuxResources(), &res); err != nil {
		return err
	}
	if len(res.Devices) > 0 {
		// runc update does not change device rules; refuse rather than
		// pretend.
		return invalid("linux_resources.devices", "cannot be updated")
	}
	c, err := s.containers.get(req.GetId())
	if err != nil {
		return err
	}
	data, err := json.Marshal(&res)
	if err != nil {
		return err
	}
	_, err = s.runRunc(ctx, data, "update", "--resources", "-", c.id)
	return err
}
