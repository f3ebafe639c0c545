package cri

import (
	"context"
	"fmt"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/cri/store/container"
)

// ContainerStats reports one container's usage.
func (s *Service) ContainerStats(ctx context.Context, r *runtime.ContainerStatsRequest) (*runtime.ContainerStatsResponse, error) {
	if r.ContainerId == "" {
		return nil, invalid("container_id", "is empty")
	}
	c, err := s.containers.Get(r.ContainerId)
	if err != nil {
		return nil, fmt.Errorf("container stats: %w", err)
	}
	return &runtime.ContainerStatsResponse{Stats: s.containerStats(ctx, c)}, nil
}

// statsCallTimeout bounds one container's stats call to its guest, so
// that a stuck agent cannot hold up a node-wide listing.
const statsCallTimeout = 10 * time.Second

// containerStats reports a container's usage. Containers that do not run
// (and failures, logged at V(2)) report attributes and zeros, as kubelet
// expects an entry for every container.
func (s *Service) containerStats(ctx context.Context, c container.Container) *runtime.ContainerStats {
	st, ok := s.guestStats(ctx, c)
	return s.criContainerStats(c, st, ok)
}

// criContainerStats converts st (valid if ok) to CRI stats.
func (s *Service) criContainerStats(c container.Container, st ContainerStats, ok bool) *runtime.ContainerStats {
	now := time.Now().UnixNano()
	cs := &runtime.ContainerStats{
		Attributes: &runtime.ContainerAttributes{
			Id: c.ID, Metadata: c.Metadata.Config.GetMetadata(),
			Labels: c.Metadata.Config.GetLabels(), Annotations: c.Metadata.Config.GetAnnotations(),
		},
		Cpu:           &runtime.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtime.UInt64Value{}},
		Memory:        &runtime.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtime.UInt64Value{}},
		WritableLayer: &runtime.FilesystemUsage{Timestamp: now, FsId: &runtime.FilesystemIdentifier{Mountpoint: s.paths.Root}, UsedBytes: &runtime.UInt64Value{}},
	}
	if !ok {
		return cs
	}
	ts := st.Timestamp.UnixNano()
	cs.Cpu = &runtime.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: &runtime.UInt64Value{Value: uint64(st.CPUUsage)}}
	cs.Memory = &runtime.MemoryUsage{
		Timestamp: ts, WorkingSetBytes: &runtime.UInt64Value{Value: st.MemoryWorkingSet},
		UsageBytes: &runtime.UInt64Value{Value: st.MemoryUsage}, RssBytes: &runtime.UInt64Value{Value: st.MemoryRSS},
	}
	if m := st.Memory; m != nil {
		cs.Memory.PageFaults = &runtime.UInt64Value{Value: m.PageFaults}
		cs.Memory.MajorPageFaults = &runtime.UInt64Value{Value: m.MajorPageFaults}
		cs.Swap = &runtime.SwapUsage{Timestamp: ts, SwapUsageBytes: &runtime.UInt64Value{Value: m.Swap}}
	}
	cs.WritableLayer.Timestamp, cs.WritableLayer.UsedBytes = ts, &runtime.UInt64Value{Value: st.WritableLayerBytes}
	return cs
}

// guestStats asks the pod VM for a running container's counters; ok is
// false for a container that does not run or whose stats failed.
func (s *Service) guestStats(ctx context.Context, c container.Container) (ContainerStats, bool) {
	if c.Status.State != container.StateRunning {
		return ContainerStats{}, false
	}
	vm, ok := s.vm(c.Metadata.SandboxID)
	if !ok {
		return ContainerStats{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, statsCallTimeout)
	defer cancel()
	st, err := vm.ContainerStats(ctx, c.ID)
	if err != nil {
		klog.V(2).InfoS("Container stats unavailable", "containerID", c.ID, "err", err)
		return ContainerStats{}, false
	}
	return st, true
}
