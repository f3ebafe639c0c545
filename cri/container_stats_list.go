package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListContainerStats reports usage of the containers matching the filter.
func (s *Service) ListContainerStats(ctx context.Context, r *runtime.ListContainerStatsRequest) (*runtime.ListContainerStatsResponse, error) {
	f := r.GetFilter()
	resp := &runtime.ListContainerStatsResponse{}
	for _, c := range s.filterContainers(f.GetId(), f.GetPodSandboxId(), f.GetLabelSelector(), nil) {
		resp.Stats = append(resp.Stats, s.containerStats(ctx, c))
	}
	return resp, nil
}
