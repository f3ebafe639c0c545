package cri

import (
	"context"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListPodSandboxStats reports usage of the sandboxes matching the filter.
func (s *Service) ListPodSandboxStats(ctx context.Context, r *runtime.ListPodSandboxStatsRequest) (*runtime.ListPodSandboxStatsResponse, error) {
	f := r.GetFilter()
	resp := &runtime.ListPodSandboxStatsResponse{}
	for _, sb := range s.sandboxes.List() {
		if f.GetId() != "" && !strings.HasPrefix(sb.ID, f.GetId()) || !labelsMatch(sb.Metadata.Config.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		resp.Stats = append(resp.Stats, s.sandboxStats(ctx, sb))
	}
	return resp, nil
}
