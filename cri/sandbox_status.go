package cri

import (
	"context"
	"encoding/json"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/store/sandbox"
)

// PodSandboxStatus reports a sandbox; verbose adds an "info" JSON document.
func (s *Service) PodSandboxStatus(_ context.Context, r *runtime.PodSandboxStatusRequest) (*runtime.PodSandboxStatusResponse, error) {
	if r.PodSandboxId == "" {
		return nil, invalid("pod_sandbox_id", "is empty")
	}
	sb, err := s.sandboxes.Get(r.PodSandboxId)
	if err != nil {
		return nil, err
	}
	resp := &runtime.PodSandboxStatusResponse{Status: s.sandboxStatus(sb), Timestamp: time.Now().UnixNano()}
	for _, c := range s.podContainers(sb.ID) {
		resp.ContainersStatuses = append(resp.ContainersStatuses, s.containerStatus(c))
	}
	if r.Verbose {
		info, _ := json.Marshal(map[string]any{
			"vcpus": sb.Metadata.VCPUs, "memoryMiB": sb.Metadata.MemoryMiB,
			"netnsPath": sb.Metadata.NetNSPath, "reason": sb.Status.Reason,
			"runtimeHandler": sb.Metadata.RuntimeHandler, "config": sb.Metadata.Config,
		})
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

func (s *Service) sandboxStatus(sb sandbox.Sandbox) *runtime.PodSandboxStatus {
	cfg := sb.Metadata.Config
	st := &runtime.PodSandboxStatus{
		Id:             sb.ID,
		Metadata:       cfg.GetMetadata(),
		State:          sb.Status.State.CRIState(),
		CreatedAt:      sb.Metadata.CreatedAt.UnixNano(),
		Labels:         cfg.GetLabels(),
		Annotations:    cfg.GetAnnotations(),
		RuntimeHandler: sb.Metadata.RuntimeHandler,
		Linux:          &runtime.LinuxPodSandboxStatus{Namespaces: &runtime.Namespace{Options: sandboxNamespaces(cfg)}},
	}
	if sb.Status.State == sandbox.StateReady && len(sb.Metadata.IPs) > 0 {
		st.Network = &runtime.PodSandboxNetworkStatus{Ip: sb.Metadata.IPs[0]}
		for _, ip := range sb.Metadata.IPs[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtime.PodIP{Ip: ip})
		}
	}
	return st
}

// sandboxNamespaces reports the namespace modes the pod runs with: those
// it asked for (host namespaces are refused at RunPodSandbox), POD where
// it asked for nothing.
func sandboxNamespaces(cfg *runtime.PodSandboxConfig) *runtime.NamespaceOption {
	o := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if o == nil {
		return &runtime.NamespaceOption{}
	}
	return o
}
