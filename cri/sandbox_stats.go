package cri

import (
	"context"
	"fmt"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/store/sandbox"
)

// PodSandboxStats reports a pod's usage: the sum of its containers'.
func (s *Service) PodSandboxStats(ctx context.Context, r *runtime.PodSandboxStatsRequest) (*runtime.PodSandboxStatsResponse, error) {
	if r.PodSandboxId == "" {
		return nil, invalid("pod_sandbox_id", "is empty")
	}
	sb, err := s.sandboxes.Get(r.PodSandboxId)
	if err != nil {
		return nil, fmt.Errorf("pod sandbox stats: %w", err)
	}
	return &runtime.PodSandboxStatsResponse{Stats: s.sandboxStats(ctx, sb)}, nil
}

func (s *Service) sandboxStats(ctx context.Context, sb sandbox.Sandbox) *runtime.PodSandboxStats {
	now := time.Now().UnixNano()
	cpu := &runtime.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtime.UInt64Value{}}
	mem := &runtime.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtime.UInt64Value{}, UsageBytes: &runtime.UInt64Value{}}
	var ctrs []*runtime.ContainerStats
	for _, c := range s.filterContainers("", sb.ID, nil, nil) {
		cs := s.containerStats(ctx, c)
		ctrs = append(ctrs, cs)
		cpu.UsageCoreNanoSeconds.Value += cs.Cpu.GetUsageCoreNanoSeconds().GetValue()
		mem.WorkingSetBytes.Value += cs.Memory.GetWorkingSetBytes().GetValue()
		mem.UsageBytes.Value += cs.Memory.GetUsageBytes().GetValue()
	}
	cfg := sb.Metadata.Config
	return &runtime.PodSandboxStats{
		Attributes: &runtime.PodSandboxAttributes{Id: sb.ID, Metadata: cfg.GetMetadata(), Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations()},
		Linux:      &runtime.LinuxPodSandboxStats{Cpu: cpu, Memory: mem, Containers: ctrs},
	}
}
