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
			{Name: "", Features: s.handlerFeatures()},
			{Name: RuntimeHandlerName, Features: s.handlerFeatures()},
		},
		Features: &runtime.RuntimeFeatures{SupplementalGroupsPolicy: true},
	}
	if r.Verbose {
		resp.Info = map[string]string{"config": s.verboseConfig()}
	}
	return resp, nil
}

// handlerFeatures are the features of podvisor's runtime handler. User
// namespaces are advertised only where the host can ID-map image layers,
// which a pod user namespace's rootfs needs.
func (s *Service) handlerFeatures() *runtime.RuntimeHandlerFeatures {
	return &runtime.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: true, UserNamespaces: s.b.Features.UserNamespaces}
}

// verboseConfig is the configuration in JSON, with stateDir, as containerd
// reports it: the directory under which containers' rootfs mounts live
// (clients probe its parent's filesystem, e.g. for ID-mapped mounts).
func (s *Service) verboseConfig() string {
	raw, _ := json.Marshal(s.cfg)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return string(raw)
	}
	if d := s.b.Features.RootfsDir; d != "" {
		m["stateDir"] = d
	}
	out, _ := json.Marshal(m)
	return string(out)
}
