package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListMetricDescriptors returns no descriptors: podvisor exposes no
// cAdvisor-style metrics through CRI yet (kubelet then uses the stats
// RPCs).
func (s *Service) ListMetricDescriptors(context.Context, *runtime.ListMetricDescriptorsRequest) (*runtime.ListMetricDescriptorsResponse, error) {
	return &runtime.ListMetricDescriptorsResponse{}, nil
}

// ListPodSandboxMetrics returns an empty entry per pod sandbox.
func (s *Service) ListPodSandboxMetrics(context.Context, *runtime.ListPodSandboxMetricsRequest) (*runtime.ListPodSandboxMetricsResponse, error) {
	resp := &runtime.ListPodSandboxMetricsResponse{}
	for _, sb := range s.sandboxes.List() {
		resp.PodMetrics = append(resp.PodMetrics, &runtime.PodSandboxMetrics{PodSandboxId: sb.ID})
	}
	return resp, nil
}
