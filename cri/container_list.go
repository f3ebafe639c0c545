package cri

import (
	"context"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/store/container"
)

// ListContainers lists containers matching the filter (ID prefix, state,
// pod sandbox ID prefix, labels).
func (s *Service) ListContainers(_ context.Context, r *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	f := r.GetFilter()
	cs := s.filterContainers(f.GetId(), f.GetPodSandboxId(), f.GetLabelSelector(), f.GetState())
	resp := &runtime.ListContainersResponse{Containers: make([]*runtime.Container, 0, len(cs))}
	for _, c := range cs {
		resp.Containers = append(resp.Containers, &runtime.Container{
			Id:           c.ID,
			PodSandboxId: c.Metadata.SandboxID,
			Metadata:     c.Metadata.Config.GetMetadata(),
			Image:        &runtime.ImageSpec{Image: c.Metadata.ImageRef, UserSpecifiedImage: c.Metadata.Config.GetImage().GetUserSpecifiedImage()},
			ImageRef:     c.Metadata.RepoDigest,
			ImageId:      c.Metadata.ImageID,
			State:        c.Status.State.CRIState(),
			CreatedAt:    c.Metadata.CreatedAt.UnixNano(),
			Labels:       c.Metadata.Config.GetLabels(),
			Annotations:  c.Metadata.Config.GetAnnotations(),
		})
	}
	return resp, nil
}

// filterContainers returns the containers that match every filter set:
// ID prefix, pod sandbox ID prefix, state, labels (all of them).
func (s *Service) filterContainers(id, sandboxID string, labels map[string]string, state *runtime.ContainerStateValue) []container.Container {
	return s.containers.Select(func(c container.Container) bool {
		return (id == "" || strings.HasPrefix(c.ID, id)) &&
			(sandboxID == "" || strings.HasPrefix(c.Metadata.SandboxID, sandboxID)) &&
			(state == nil || state.State == c.Status.State.CRIState()) &&
			labelsMatch(c.Metadata.Config.GetLabels(), labels)
	})
}

// podContainers returns the containers of the sandbox whose ID is id.
func (s *Service) podContainers(id string) []container.Container {
	return s.containers.Select(func(c container.Container) bool { return c.Metadata.SandboxID == id })
}
