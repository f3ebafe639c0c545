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
	resp := &runtime.ListContainersResponse{}
	for _, c := range s.filterContainers(r.GetFilter().GetId(), r.GetFilter().GetPodSandboxId(), r.GetFilter().GetLabelSelector(), r.GetFilter().GetState()) {
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

func (s *Service) filterContainers(id, sandboxID string, labels map[string]string, state *runtime.ContainerStateValue) []container.Container {
	var out []container.Container
	for _, c := range s.containers.List() {
		switch {
		case id != "" && !strings.HasPrefix(c.ID, id),
			sandboxID != "" && !strings.HasPrefix(c.Metadata.SandboxID, sandboxID),
			state != nil && state.State != c.Status.State.CRIState(),
			!labelsMatch(c.Metadata.Config.GetLabels(), labels):
			continue
		}
		out = append(out, c)
	}
	return out
}
