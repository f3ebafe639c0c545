package cri

import (
	"context"
	"fmt"

	"github.com/containerd/nri/pkg/api"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
	"github.com/podvisor/podvisor/cri/ocispec"
	"github.com/podvisor/podvisor/cri/store/container"
)

// UpdateContainerResources applies new cgroup limits to a created or
// running container and records them. NRI plugins may amend them first.
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
	linux := r.Linux
	if s.nri != nil {
		pod, ctr := s.nriPodOf(c.Metadata.SandboxID), nriContainer(c)
		own, others, err := s.nri.updateContainer(ctx, pod, ctr, api.FromOCILinuxResources(res, nil))
		if err != nil {
			return nil, fmt.Errorf("update container %s: %w", c.ID, err)
		}
		if err := checkNRIUpdate(own); err != nil {
			return nil, fmt.Errorf("update container %s: %w", c.ID, err)
		}
		linux = overlayCRIResources(linux, own)
		defer func() {
			if c, err := s.containers.Get(c.ID); err == nil {
				s.nri.postUpdateContainer(ctx, pod, nriContainer(c))
			}
		}()
		s.nri.updateContainers(ctx, others)
	}
	if err := s.updateResources(ctx, c.ID, linux); err != nil {
		return nil, err
	}
	return &runtime.UpdateContainerResourcesResponse{}, nil
}

// updateResources applies linux to container id in its pod VM and records
// it; it is the path of CRI and NRI plugin updates alike.
func (s *Service) updateResources(ctx context.Context, id string, linux *runtime.LinuxContainerResources) error {
	res, err := ocispec.Resources(linux)
	if err != nil {
		return err
	}
	c, err := s.containers.Get(id)
	if err != nil {
		return err
	}
	_, err = s.containers.Update(id, func(st container.Status) (container.Status, error) {
		if st.State != container.StateCreated && st.State != container.StateRunning {
			return st, fmt.Errorf("update container %s: it is %s: %w", id, st.State, errdefs.ErrFailedPrecondition)
		}
		vm, ok := s.vm(c.Metadata.SandboxID)
		if !ok {
			return st, fmt.Errorf("update container %s: pod sandbox not ready: %w", id, errdefs.ErrFailedPrecondition)
		}
		if err := vm.UpdateContainerResources(ctx, id, res); err != nil {
			return st, fmt.Errorf("update container %s: %w", id, err)
		}
		st.Resources = linux
		return st, nil
	})
	return err
}
