package cri

import (
	"context"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/store/sandbox"
)

// ListPodSandbox lists sandboxes matching the filter (ID prefix, state,
// labels).
func (s *Service) ListPodSandbox(_ context.Context, r *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	f := r.GetFilter()
	sbs := s.sandboxes.Select(func(sb sandbox.Sandbox) bool {
		return (f.GetId() == "" || strings.HasPrefix(sb.ID, f.GetId())) &&
			(f.GetState() == nil || f.GetState().State == sb.Status.State.CRIState()) &&
			labelsMatch(sb.Metadata.Config.GetLabels(), f.GetLabelSelector())
	})
	resp := &runtime.ListPodSandboxResponse{Items: make([]*runtime.PodSandbox, 0, len(sbs))}
	for _, sb := range sbs {
		cfg := sb.Metadata.Config
		resp.Items = append(resp.Items, &runtime.PodSandbox{
			Id:             sb.ID,
			Metadata:       cfg.GetMetadata(),
			State:          sb.Status.State.CRIState(),
			CreatedAt:      sb.Metadata.CreatedAt.UnixNano(),
			Labels:         cfg.GetLabels(),
			Annotations:    cfg.GetAnnotations(),
			RuntimeHandler: sb.Metadata.RuntimeHandler,
		})
	}
	return resp, nil
}

// labelsMatch reports whether labels has every key=value of selector.
func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
