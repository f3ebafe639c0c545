package cri

import (
	"context"
	"slices"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The metric names critest v1.37.0 expects (pkg/validate/pod.go), less
// those it lists as not yet implemented by runtimes, and those whose
// values it treats as optional.
var (
	critestMetrics = []string{
		"container_blkio_device_usage_total", "container_cpu_cfs_periods_total", "container_cpu_cfs_throttled_periods_total",
		"container_cpu_cfs_throttled_seconds_total", "container_cpu_system_seconds_total", "container_cpu_usage_seconds_total",
		"container_cpu_user_seconds_total", "container_file_descriptors", "container_fs_inodes_free", "container_fs_inodes_total",
		"container_fs_limit_bytes", "container_fs_reads_bytes_total", "container_fs_reads_total", "container_fs_usage_bytes",
		"container_fs_writes_bytes_total", "container_fs_writes_total", "container_last_seen", "container_memory_cache",
		"container_memory_failcnt", "container_memory_failures_total", "container_memory_kernel_usage", "container_memory_mapped_file",
		"container_memory_max_usage_bytes", "container_memory_rss", "container_memory_swap", "container_memory_usage_bytes",
		"container_memory_working_set_bytes", "container_network_receive_bytes_total", "container_network_receive_errors_total",
		"container_network_receive_packets_dropped_total", "container_network_receive_packets_total",
		"container_network_transmit_bytes_total", "container_network_transmit_errors_total",
		"container_network_transmit_packets_dropped_total", "container_network_transmit_packets_total", "container_oom_events_total",
		"container_processes", "container_sockets", "container_spec_cpu_period", "container_spec_cpu_shares",
		"container_spec_memory_limit_bytes", "container_spec_memory_swap_limit_bytes", "container_start_time_seconds",
		"container_threads", "container_threads_max",
	}
	critestOptionalValues = []string{
		"container_blkio_device_usage_total", "container_fs_reads_bytes_total", "container_fs_reads_total",
		"container_fs_writes_bytes_total", "container_fs_writes_total",
	}
)

func TestListMetricDescriptors(t *testing.T) {
	e := newEnv(t)
	r, err := e.s.ListMetricDescriptors(context.Background(), &runtime.ListMetricDescriptorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, d := range r.Descriptors {
		if seen[d.Name] {
			t.Errorf("%s described twice", d.Name)
		}
		seen[d.Name] = true
		if d.Help == "" || len(d.LabelKeys) < 3 || !slices.Equal(d.LabelKeys[:3], baseMetricLabels) {
			t.Errorf("%s: help %q, label keys %v", d.Name, d.Help, d.LabelKeys)
		}
		for _, k := range []string{"namespace", "pod", "container"} { // kubelet adds these
			if slices.Contains(d.LabelKeys, k) {
				t.Errorf("%s declares label %q", d.Name, k)
			}
		}
	}
	for _, n := range critestMetrics {
		if !seen[n] {
			t.Errorf("%s is not described", n)
		}
	}
}

// fullStats are stats with every group filled.
func fullStats(string) (ContainerStats, error) {
	return ContainerStats{
		Timestamp: time.Now(), CPUUsage: 2500 * time.Millisecond, MemoryUsage: 10 << 20, MemoryWorkingSet: 8 << 20,
		MemoryRSS: 6 << 20, PIDs: 3, WritableLayerBytes: 4096,
		CPU:       &CPUStats{User: 2 * time.Second, System: 500 * time.Millisecond, Periods: 10, ThrottledPeriods: 4, ThrottledTime: 3 * time.Second},
		Memory:    &MemoryStats{Cache: 1, Kernel: 2, MappedFile: 3, Swap: 4, MaxUsage: 11 << 20, LimitHits: 5, PageFaults: 6, MajorPageFaults: 7, OOMEvents: 1},
		Processes: &ProcessStats{Threads: 5, ThreadsMax: 100, FileDescriptors: 9, Sockets: 2},
	}, nil
}

// metricsEnv runs a pod with a running container "run" (resources as in
// critest's metrics container) and a created container "idle".
func metricsEnv(t *testing.T, edit func(*env)) (e *env, pod, run, idle string) {
	e = newEnv(t)
	if edit != nil {
		edit(e)
	}
	e.net.Ifaces = []InterfaceStats{{Name: "eth0", RxBytes: 100, RxPackets: 2, TxBytes: 200, TxPackets: 3, RxDropped: 1}}
	pod = e.runPod("p")
	e.vms.get(pod).StatsFn = fullStats
	cfg := ctrConfig("run")
	cfg.Linux.Resources = &runtime.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 20000, CpuShares: 1024, MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 64 << 20}
	r, err := e.s.CreateContainer(context.Background(), &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	run = r.ContainerId
	if _, err := e.s.StartContainer(context.Background(), &runtime.StartContainerRequest{ContainerId: run}); err != nil {
		t.Fatal(err)
	}
	idle = e.createCtr(pod, "idle")
	return e, pod, run, idle
}

// podMetrics returns the metrics of pod by name (pod-level and container
// ones together), and the container IDs that have metrics.
func podMetrics(t *testing.T, e *env, pod string) (map[string][]*runtime.Metric, []string) {
	t.Helper()
	r, err := e.s.ListPodSandboxMetrics(context.Background(), &runtime.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string][]*runtime.Metric{}
	var ctrs []string
	for _, pm := range r.PodMetrics {
		if pm.PodSandboxId != pod {
			continue
		}
		for _, m := range pm.Metrics {
			byName[m.Name] = append(byName[m.Name], m)
		}
		for _, cm := range pm.ContainerMetrics {
			ctrs = append(ctrs, cm.ContainerId)
			for _, m := range cm.Metrics {
				byName[m.Name] = append(byName[m.Name], m)
			}
		}
	}
	return byName, ctrs
}

// TestListPodSandboxMetricsCritest mirrors critest's check: every expected
// metric has values, with as many label values as its descriptor has keys.
func TestListPodSandboxMetricsCritest(t *testing.T) {
	e, pod, run, _ := metricsEnv(t, nil)
	descs, _ := e.s.ListMetricDescriptors(context.Background(), &runtime.ListMetricDescriptorsRequest{})
	got, ctrs := podMetrics(t, e, pod)
	if !slices.Equal(ctrs, []string{run}) {
		t.Fatalf("containers with metrics %v, want only the running one", ctrs)
	}
	for _, n := range critestMetrics {
		if len(got[n]) == 0 && !slices.Contains(critestOptionalValues, n) {
			t.Errorf("no value for %s", n)
		}
	}
	for _, d := range descs.Descriptors {
		for _, m := range got[d.Name] {
			if len(m.LabelValues) != len(d.LabelKeys) || m.MetricType != metricTypes[d.Name] || m.Timestamp != 0 {
				t.Errorf("%s: label values %v for keys %v, type %v, timestamp %d", d.Name, m.LabelValues, d.LabelKeys, m.MetricType, m.Timestamp)
			}
		}
		delete(got, d.Name)
	}
	for n := range got {
		t.Errorf("%s has values but no descriptor", n)
	}
}

func TestListPodSandboxMetricsValues(t *testing.T) {
	e, pod, run, _ := metricsEnv(t, nil)
	got, _ := podMetrics(t, e, pod)
	one := func(name string, labels ...string) uint64 {
		t.Helper()
		for _, m := range got[name] {
			if slices.Equal(m.LabelValues[3:], labels) {
				return m.Value.Value
			}
		}
		t.Fatalf("no %s%v", name, labels)
		return 0
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   uint64
	}{
		{"container_cpu_usage_seconds_total", []string{"total"}, 2}, // 2.5 s, whole seconds
		{"container_cpu_system_seconds_total", nil, 0},
		{"container_cpu_cfs_throttled_seconds_total", nil, 3},
		{"container_cpu_cfs_throttled_periods_total", nil, 4},
		{"container_memory_working_set_bytes", nil, 8 << 20},
		{"container_memory_max_usage_bytes", nil, 11 << 20},
		{"container_memory_failures_total", []string{"pgmajfault", "hierarchy"}, 7},
		{"container_oom_events_total", nil, 1},
		{"container_processes", nil, 3},
		{"container_threads_max", nil, 100},
		{"container_fs_usage_bytes", nil, 4096},
		{"container_spec_cpu_quota", nil, 20000},
		{"container_spec_memory_swap_limit_bytes", nil, 64 << 20},
		{"container_network_receive_bytes_total", []string{"eth0"}, 100},
		{"container_network_receive_packets_dropped_total", []string{"eth0"}, 1},
		{"container_network_transmit_packets_total", []string{"eth0"}, 3},
	} {
		if v := one(tc.name, tc.labels...); v != tc.want {
			t.Errorf("%s%v = %d, want %d", tc.name, tc.labels, v, tc.want)
		}
	}
	m := got["container_memory_rss"][0]
	if m.LabelValues[0] != run || m.LabelValues[2] != "docker.io/library/busybox:latest" {
		t.Errorf("base labels %v", m.LabelValues)
	}
	n := got["container_network_receive_bytes_total"][0]
	if n.LabelValues[0] != pod || n.LabelValues[1] != sandboxName(podConfig("p").Metadata) {
		t.Errorf("pod metric base labels %v", n.LabelValues)
	}
	if v := one("container_fs_limit_bytes"); v == 0 {
		t.Error("fs limit 0: statfs of the root dir failed")
	}
}

// TestListPodSandboxMetricsMissingData: what a backend does not report is
// left out, never zeroed.
func TestListPodSandboxMetricsMissingData(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(*env)
		stats   func(ContainerStats) ContainerStats
		absent  []string
		present []string
	}{
		{"no CPU group", nil, func(s ContainerStats) ContainerStats { s.CPU = nil; return s },
			[]string{"container_cpu_user_seconds_total", "container_cpu_cfs_periods_total"}, []string{"container_cpu_usage_seconds_total"}},
		{"no memory group", nil, func(s ContainerStats) ContainerStats { s.Memory = nil; return s },
			[]string{"container_memory_cache", "container_oom_events_total", "container_memory_failures_total"}, []string{"container_memory_working_set_bytes"}},
		{"no process group", nil, func(s ContainerStats) ContainerStats { s.Processes = nil; return s },
			[]string{"container_threads", "container_sockets"}, []string{"container_processes"}},
		{"network not counted", func(e *env) { e.network = netOnly{e.net}; e.reopen() }, nil,
			[]string{"container_network_receive_bytes_total"}, []string{"container_last_seen"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, pod, _, _ := metricsEnv(t, tc.edit)
			if tc.stats != nil {
				e.vms.get(pod).StatsFn = func(id string) (ContainerStats, error) {
					s, _ := fullStats(id)
					return tc.stats(s), nil
				}
			}
			got, _ := podMetrics(t, e, pod)
			for _, n := range tc.absent {
				if len(got[n]) != 0 {
					t.Errorf("%s reported", n)
				}
			}
			for _, n := range tc.present {
				if len(got[n]) == 0 {
					t.Errorf("%s missing", n)
				}
			}
		})
	}
}

func TestPodSandboxStatsNetworkAndProcesses(t *testing.T) {
	e, pod, _, _ := metricsEnv(t, nil)
	r, err := e.s.PodSandboxStats(context.Background(), &runtime.PodSandboxStatsRequest{PodSandboxId: pod})
	if err != nil {
		t.Fatal(err)
	}
	l := r.Stats.Linux
	if l.Network.GetDefaultInterface().GetName() != "eth0" || l.Network.DefaultInterface.RxBytes.Value != 100 ||
		l.Process.ProcessCount.Value != 3 || len(l.Containers) != 2 {
		t.Fatalf("pod stats %+v", l)
	}
}
