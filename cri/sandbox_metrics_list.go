package cri

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/cri/store/container"
	"github.com/podvisor/podvisor/cri/store/sandbox"
)

// metricsParallelism bounds how many pod VMs are asked for stats at once.
const metricsParallelism = 8

// ListPodSandboxMetrics reports the metrics of ListMetricDescriptors for
// every pod sandbox: network metrics at pod level, the others per running
// container. Data a backend does not report is left out, not zeroed (see
// ContainerStats). Values are gathered live, so timestamps are 0.
func (s *Service) ListPodSandboxMetrics(ctx context.Context, _ *runtime.ListPodSandboxMetricsRequest) (*runtime.ListPodSandboxMetricsResponse, error) {
	sbs := s.sandboxes.List()
	fs := statHostFS(s.paths.Root)
	now := time.Now()
	out := make([]*runtime.PodSandboxMetrics, len(sbs))
	var g errgroup.Group
	g.SetLimit(metricsParallelism)
	for i, sb := range sbs {
		g.Go(func() error {
			out[i] = s.sandboxMetrics(ctx, sb, fs, now)
			return nil
		})
	}
	g.Wait()
	return &runtime.ListPodSandboxMetricsResponse{PodMetrics: out}, nil
}

func (s *Service) sandboxMetrics(ctx context.Context, sb sandbox.Sandbox, fs *hostFS, now time.Time) *runtime.PodSandboxMetrics {
	pm := &runtime.PodSandboxMetrics{PodSandboxId: sb.ID}
	if ifs, ok := s.networkStats(ctx, sb); ok {
		b := metricBuilder{base: []string{sb.ID, sb.Metadata.Name, ""}}
		for _, i := range ifs {
			b.network(i)
		}
		pm.Metrics = b.out
	}
	for _, c := range s.podContainers(sb.ID) {
		st, ok := s.guestStats(ctx, c)
		if !ok {
			continue
		}
		pm.ContainerMetrics = append(pm.ContainerMetrics, &runtime.ContainerMetrics{
			ContainerId: c.ID, Metrics: containerMetrics(c, st, fs, now),
		})
	}
	return pm
}

// containerMetrics converts one running container's stats to metrics.
func containerMetrics(c container.Container, st ContainerStats, fs *hostFS, now time.Time) []*runtime.Metric {
	b := metricBuilder{base: []string{c.ID, c.Metadata.Name, firstNonEmpty(c.Metadata.ImageName, c.Metadata.ImageRef)}}
	b.add("container_last_seen", uint64(now.Unix()))
	if !c.Status.StartedAt.IsZero() {
		b.add("container_start_time_seconds", uint64(c.Status.StartedAt.Unix()))
	}

	b.add("container_cpu_usage_seconds_total", seconds(st.CPUUsage), "total")
	if cpu := st.CPU; cpu != nil {
		b.add("container_cpu_user_seconds_total", seconds(cpu.User))
		b.add("container_cpu_system_seconds_total", seconds(cpu.System))
		b.add("container_cpu_cfs_periods_total", cpu.Periods)
		b.add("container_cpu_cfs_throttled_periods_total", cpu.ThrottledPeriods)
		b.add("container_cpu_cfs_throttled_seconds_total", seconds(cpu.ThrottledTime))
	}

	b.add("container_memory_usage_bytes", st.MemoryUsage)
	b.add("container_memory_working_set_bytes", st.MemoryWorkingSet)
	b.add("container_memory_rss", st.MemoryRSS)
	if m := st.Memory; m != nil {
		b.add("container_memory_cache", m.Cache)
		b.add("container_memory_kernel_usage", m.Kernel)
		b.add("container_memory_mapped_file", m.MappedFile)
		b.add("container_memory_swap", m.Swap)
		b.add("container_memory_max_usage_bytes", m.MaxUsage)
		b.add("container_memory_failcnt", m.LimitHits)
		// cgroup v2 counts faults hierarchically only: both scopes carry
		// the same value, as in cAdvisor.
		for _, scope := range []string{"container", "hierarchy"} {
			b.add("container_memory_failures_total", m.PageFaults, "pgfault", scope)
			b.add("container_memory_failures_total", m.MajorPageFaults, "pgmajfault", scope)
		}
		b.add("container_oom_events_total", m.OOMEvents)
	}

	b.add("container_processes", st.PIDs)
	if p := st.Processes; p != nil {
		b.add("container_threads", p.Threads)
		b.add("container_threads_max", p.ThreadsMax)
		b.add("container_file_descriptors", p.FileDescriptors)
		b.add("container_sockets", p.Sockets)
	}

	b.add("container_fs_usage_bytes", st.WritableLayerBytes)
	if fs != nil {
		b.add("container_fs_limit_bytes", fs.capacity)
		b.add("container_fs_inodes_total", fs.inodes)
		b.add("container_fs_inodes_free", fs.inodesFree)
	}

	// The limits in force; unset period and quota are left out (as in
	// cAdvisor), an unset memory limit is 0 (unlimited).
	r := c.Status.Resources
	if r.GetCpuPeriod() > 0 {
		b.add("container_spec_cpu_period", uint64(r.GetCpuPeriod()))
	}
	if r.GetCpuQuota() > 0 {
		b.add("container_spec_cpu_quota", uint64(r.GetCpuQuota()))
	}
	if r.GetCpuShares() > 0 {
		b.add("container_spec_cpu_shares", uint64(r.GetCpuShares()))
	}
	b.add("container_spec_memory_limit_bytes", uint64(max(r.GetMemoryLimitInBytes(), 0)))
	b.add("container_spec_memory_swap_limit_bytes", uint64(max(r.GetMemorySwapLimitInBytes(), 0)))
	return b.out
}

// metricBuilder appends metrics with the base label values.
type metricBuilder struct {
	base []string
	out  []*runtime.Metric
}

// add appends metric name with value v and the label values that follow
// the base ones (tests check them against the descriptors).
func (b *metricBuilder) add(name string, v uint64, labels ...string) {
	values := make([]string, 0, len(b.base)+len(labels))
	values = append(append(values, b.base...), labels...)
	b.out = append(b.out, &runtime.Metric{
		Name: name, MetricType: metricTypes[name], LabelValues: values, Value: &runtime.UInt64Value{Value: v},
	})
}

func (b *metricBuilder) network(i InterfaceStats) {
	for _, m := range []struct {
		name string
		v    uint64
	}{
		{"container_network_receive_bytes_total", i.RxBytes},
		{"container_network_receive_packets_total", i.RxPackets},
		{"container_network_receive_packets_dropped_total", i.RxDropped},
		{"container_network_receive_errors_total", i.RxErrors},
		{"container_network_transmit_bytes_total", i.TxBytes},
		{"container_network_transmit_packets_total", i.TxPackets},
		{"container_network_transmit_packets_dropped_total", i.TxDropped},
		{"container_network_transmit_errors_total", i.TxErrors},
	} {
		b.add(m.name, m.v, i.Name)
	}
}

// seconds truncates d to whole seconds (see metric_descriptors.go).
func seconds(d time.Duration) uint64 { return uint64(max(d, 0) / time.Second) }

// hostFS is the host filesystem that holds the writable layers (under
// the service's root directory).
type hostFS struct {
	capacity, inodes, inodesFree uint64
}

func statHostFS(path string) *hostFS {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		klog.V(2).InfoS("Statfs of the writable layers' filesystem", "path", path, "err", err)
		return nil
	}
	return &hostFS{capacity: st.Blocks * uint64(st.Bsize), inodes: st.Files, inodesFree: st.Ffree}
}
