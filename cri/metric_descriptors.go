package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The cAdvisor-style metrics kubelet serves on /metrics/cadvisor when it
// takes pod and container stats from the runtime. Names, help texts, types
// and label keys follow cAdvisor and CRI-O, whose set critest checks.
//
// Every metric carries the base labels id (container or sandbox ID), name
// (the reserved container or sandbox name) and image; kubelet appends
// namespace, pod and container itself, so they must not be declared here.
// A few take further labels, listed in metricDesc.labels.
//
// Values are CRI UInt64Values: *_seconds metrics are whole seconds, as
// with CRI-O, because the CRI Metric message has no fractional value.

var baseMetricLabels = []string{"id", "name", "image"}

const (
	counter = runtime.MetricType_COUNTER
	gauge   = runtime.MetricType_GAUGE
)

// metricDesc describes one metric.
type metricDesc struct {
	name, help string
	typ        runtime.MetricType
	labels     []string // after the base labels
}

var (
	cpuLabel      = []string{"cpu"}
	ifaceLabel    = []string{"interface"}
	deviceLabel   = []string{"device"}
	failureLabels = []string{"failure_type", "scope"}
	blkioLabels   = []string{"device", "major", "minor", "operation"}
)

// metricDescs is the static list ListMetricDescriptors returns (CRI asks
// for a list fixed at start-up). Metrics marked "no values yet" are
// described because they are part of the cAdvisor set, but no backend
// reports their data: block I/O of the virtio-fs rootfs is not accounted
// per container in the guest.
var metricDescs = []metricDesc{
	{"container_last_seen", "Last time a container was seen by the exporter", gauge, nil},
	{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", gauge, nil},

	{"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", counter, cpuLabel},
	{"container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", counter, nil},
	{"container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", counter, nil},
	{"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", counter, nil},
	{"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", counter, nil},
	{"container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", counter, nil},

	{"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed", gauge, nil},
	{"container_memory_working_set_bytes", "Current working set in bytes.", gauge, nil},
	{"container_memory_rss", "Size of RSS in bytes.", gauge, nil},
	{"container_memory_cache", "Number of bytes of page cache memory.", gauge, nil},
	{"container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", gauge, nil},
	{"container_memory_mapped_file", "Size of memory mapped files in bytes.", gauge, nil},
	{"container_memory_swap", "Container swap usage in bytes.", gauge, nil},
	{"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes", gauge, nil},
	{"container_memory_failcnt", "Number of memory usage hits limits", counter, nil},
	{"container_memory_failures_total", "Cumulative count of memory allocation failures.", counter, failureLabels},
	{"container_oom_events_total", "Count of out of memory events observed for the container", counter, nil},

	{"container_processes", "Number of processes running inside the container.", gauge, nil},
	{"container_threads", "Number of threads running inside the container", gauge, nil},
	{"container_threads_max", "Maximum number of threads allowed inside the container, infinity if value is zero", gauge, nil},
	{"container_file_descriptors", "Number of open file descriptors for the container.", gauge, nil},
	{"container_sockets", "Number of open sockets for the container.", gauge, nil},

	// The writable layer and the host filesystem that holds it.
	{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", gauge, nil},
	{"container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", gauge, nil},
	{"container_fs_inodes_total", "Number of Inodes", gauge, nil},
	{"container_fs_inodes_free", "Number of available Inodes", gauge, nil},
	// No values yet.
	{"container_fs_reads_bytes_total", "Cumulative count of bytes read", counter, deviceLabel},
	{"container_fs_reads_total", "Cumulative count of reads completed", counter, deviceLabel},
	{"container_fs_writes_bytes_total", "Cumulative count of bytes written", counter, deviceLabel},
	{"container_fs_writes_total", "Cumulative count of writes completed", counter, deviceLabel},
	{"container_blkio_device_usage_total", "Blkio Device bytes usage", counter, blkioLabels},

	{"container_spec_cpu_period", "CPU period of the container.", gauge, nil},
	{"container_spec_cpu_quota", "CPU quota of the container.", gauge, nil},
	{"container_spec_cpu_shares", "CPU share of the container.", gauge, nil},
	{"container_spec_memory_limit_bytes", "Memory limit for the container.", gauge, nil},
	{"container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", gauge, nil},

	// Pod level: the pod's network is shared by its containers.
	{"container_network_receive_bytes_total", "Cumulative count of bytes received", counter, ifaceLabel},
	{"container_network_receive_packets_total", "Cumulative count of packets received", counter, ifaceLabel},
	{"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving", counter, ifaceLabel},
	{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving", counter, ifaceLabel},
	{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", counter, ifaceLabel},
	{"container_network_transmit_packets_total", "Cumulative count of packets transmitted", counter, ifaceLabel},
	{"container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting", counter, ifaceLabel},
	{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting", counter, ifaceLabel},
}

// metricTypes is the type of each described metric, by name.
var metricTypes = func() map[string]runtime.MetricType {
	m := make(map[string]runtime.MetricType, len(metricDescs))
	for _, d := range metricDescs {
		m[d.name] = d.typ
	}
	return m
}()

// ListMetricDescriptors describes the metrics of ListPodSandboxMetrics.
func (s *Service) ListMetricDescriptors(context.Context, *runtime.ListMetricDescriptorsRequest) (*runtime.ListMetricDescriptorsResponse, error) {
	resp := &runtime.ListMetricDescriptorsResponse{Descriptors: make([]*runtime.MetricDescriptor, 0, len(metricDescs))}
	for _, d := range metricDescs {
		keys := make([]string, 0, len(baseMetricLabels)+len(d.labels))
		keys = append(append(keys, baseMetricLabels...), d.labels...)
		resp.Descriptors = append(resp.Descriptors, &runtime.MetricDescriptor{Name: d.name, Help: d.help, LabelKeys: keys})
	}
	return resp, nil
}
