package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// UpdateRuntimeConfig accepts the pod CIDR kubelet sends; the CNI
// configuration, not podvisor, allocates addresses, so it is only logged.
func (s *Service) UpdateRuntimeConfig(_ context.Context, r *runtime.UpdateRuntimeConfigRequest) (*runtime.UpdateRuntimeConfigResponse, error) {
	if cidr := r.GetRuntimeConfig().GetNetworkConfig().GetPodCidr(); cidr != "" {
		klog.InfoS("Pod CIDR from kubelet (addresses come from the CNI configuration)", "podCIDR", cidr)
	}
	return &runtime.UpdateRuntimeConfigResponse{}, nil
}
