package cri

import (
	"context"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/store/sandbox"
)

// ListPodSandboxStats reports usage of the sandboxes matching the filter.
func (s *Service) ListPodSandboxStats(ctx context.Context, r *runtime.ListPodSandboxStatsRequest) (*runtime.ListPodSandboxStatsResponse, error) {
	f := r.GetFilter()
	resp := &runtime.ListPodSandboxStatsResponse{}
	sbs := s.sandboxes.Select(func(sb sandbox.Sandbox) bool {
		return (f.GetId() == "" || strings.HasPrefix(sb.ID, f.GetId())) && labelsMatch(sb.Metadata.Config.GetLabels(), f.GetLabelSelector())
	})
	for _, sb := range sbs {
		resp.Stats = append(resp.Stats, s.sandboxStats(ctx, sb))
	}
	return resp, nil
}
