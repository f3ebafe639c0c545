package cri

import (
	"context"
	"fmt"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/cri/store/sandbox"
)

// PodSandboxStats reports a pod's usage: the sum of its containers', and
// its network if the network backend counts it.
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
	mem := &runtime.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtime.UInt64Value{}, UsageBytes: &runtime.UInt64Value{}, RssBytes: &runtime.UInt64Value{}}
	proc := &runtime.ProcessUsage{Timestamp: now, ProcessCount: &runtime.UInt64Value{}}
	var ctrs []*runtime.ContainerStats
	for _, c := range s.podContainers(sb.ID) {
		st, ok := s.guestStats(ctx, c)
		cs := s.criContainerStats(c, st, ok)
		ctrs = append(ctrs, cs)
		proc.ProcessCount.Value += st.PIDs
		cpu.UsageCoreNanoSeconds.Value += cs.Cpu.GetUsageCoreNanoSeconds().GetValue()
		mem.WorkingSetBytes.Value += cs.Memory.GetWorkingSetBytes().GetValue()
		mem.UsageBytes.Value += cs.Memory.GetUsageBytes().GetValue()
		mem.RssBytes.Value += cs.Memory.GetRssBytes().GetValue()
	}
	cfg := sb.Metadata.Config
	linux := &runtime.LinuxPodSandboxStats{Cpu: cpu, Memory: mem, Process: proc, Containers: ctrs}
	if ifs, ok := s.networkStats(ctx, sb); ok && len(ifs) > 0 {
		linux.Network = &runtime.NetworkUsage{Timestamp: now, DefaultInterface: criInterface(ifs[0])}
		for _, i := range ifs[1:] {
			linux.Network.Interfaces = append(linux.Network.Interfaces, criInterface(i))
		}
	}
	return &runtime.PodSandboxStats{
		Attributes: &runtime.PodSandboxAttributes{Id: sb.ID, Metadata: cfg.GetMetadata(), Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations()},
		Linux:      linux,
	}
}

// networkStats asks the network backend, if it counts traffic, for a
// ready pod's interface counters.
func (s *Service) networkStats(ctx context.Context, sb sandbox.Sandbox) ([]InterfaceStats, bool) {
	nr, ok := s.b.Network.(NetworkStatsReader)
	if !ok || sb.Status.State != sandbox.StateReady {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, statsCallTimeout)
	defer cancel()
	ifs, err := nr.NetworkStats(ctx, sb.ID)
	if err != nil {
		klog.V(2).InfoS("Pod network stats unavailable", "podSandboxID", sb.ID, "err", err)
		return nil, false
	}
	return ifs, true
}

func criInterface(i InterfaceStats) *runtime.NetworkInterfaceUsage {
	return &runtime.NetworkInterfaceUsage{
		Name:     i.Name,
		RxBytes:  &runtime.UInt64Value{Value: i.RxBytes},
		RxErrors: &runtime.UInt64Value{Value: i.RxErrors},
		TxBytes:  &runtime.UInt64Value{Value: i.TxBytes},
		TxErrors: &runtime.UInt64Value{Value: i.TxErrors},
	}
}
