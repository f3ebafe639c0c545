package cri

import (
	"context"
	"encoding/json"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Status reports RuntimeReady (the service is up and its stores open) and
// NetworkReady from the network backend.
func (s *Service) Status(ctx context.Context, r *runtime.StatusRequest) (*runtime.StatusResponse, error) {
	netCond := &runtime.RuntimeCondition{Type: runtime.NetworkReady, Status: true}
	if err := s.b.Network.Status(ctx); err != nil {
		netCond.Status, netCond.Reason, netCond.Message = false, "NetworkPluginNotReady", err.Error()
	}
	resp := &runtime.StatusResponse{
		Status: &runtime.RuntimeStatus{Conditions: []*runtime.RuntimeCondition{
			{Type: runtime.RuntimeReady, Status: true},
			netCond,
		}},
		RuntimeHandlers: []*runtime.RuntimeHandler{
			{Name: "", Features: &runtime.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: true}},
			{Name: RuntimeHandlerName, Features: &runtime.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: true}},
		},
		Features: &runtime.RuntimeFeatures{SupplementalGroupsPolicy: true},
	}
	if r.Verbose {
		cfg, _ := json.Marshal(s.cfg)
		resp.Info = map[string]string{"config": string(cfg)}
	}
	return resp, nil
}
