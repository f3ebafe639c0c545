package cri

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
	"github.com/podvisor/podvisor/cri/ocispec"
	"github.com/podvisor/podvisor/cri/store/container"
)

// UpdateContainerResources applies new cgroup limits to a created or
// running container and records them.
func (s *Service) UpdateContainerResources(ctx context.Context, r *runtime.UpdateContainerResourcesRequest) (*runtime.UpdateContainerResourcesResponse, error) {
	if r.ContainerId == "" {
		return nil, invalid("container_id", "is empty")
	}
	if r.Linux == nil {
		return nil, invalid("linux", "is missing")
	}
	res, err := ocispec.Resources(r.Linux)
	if err != nil {
		return nil, err
	}
	c, err := s.containers.Get(r.ContainerId)
	if err != nil {
		return nil, fmt.Errorf("update container resources: %w", err)
	}
	_, err = s.containers.Update(c.ID, func(st container.Status) (container.Status, error) {
		if st.State != container.StateCreated && st.State != container.StateRunning {
			return st, fmt.Errorf("update container %s: it is %s: %w", c.ID, st.State, errdefs.ErrFailedPrecondition)
		}
		vm, ok := s.vm(c.Metadata.SandboxID)
		if !ok {
			return st, fmt.Errorf("update container %s: pod sandbox not ready: %w", c.ID, errdefs.ErrFailedPrecondition)
		}
		if err := vm.UpdateContainerResources(ctx, c.ID, res); err != nil {
			return st, fmt.Errorf("update container %s: %w", c.ID, err)
		}
		st.Resources = r.Linux
		return st, nil
	})
	if err != nil {
		return nil, err
	}
	return &runtime.UpdateContainerResourcesResponse{}, nil
}
