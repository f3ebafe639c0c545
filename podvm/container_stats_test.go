package podvm

import (
	"testing"
	"time"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

func statU64(v uint64) *uint64 { return &v }

// fullStats is an agent response with every field set.
func fullStats() *agentpb.ContainerStatsResponse {
	return &agentpb.ContainerStatsResponse{
		TimestampUnixNano: 1e9, CpuUsageUsec: 3_000_000, CpuUserUsec: 2_000_000, CpuSystemUsec: 1_000_000,
		MemoryUsageBytes: 100, MemoryWorkingSetBytes: 90, MemoryAnonBytes: 40, MemoryFileBytes: 50, Pids: 2,
		CpuPeriods: statU64(10), CpuThrottledPeriods: statU64(3), CpuThrottledUsec: statU64(1500),
		MemoryKernelBytes: statU64(7), MemoryFileMappedBytes: statU64(8), MemoryPgfault: statU64(9), MemoryPgmajfault: statU64(1),
		MemoryPeakBytes: statU64(120), MemorySwapBytes: statU64(0), MemoryEventsMax: statU64(4), MemoryEventsOomKill: statU64(0),
		PidsMax: statU64(0), Threads: statU64(5), FileDescriptors: statU64(12), Sockets: statU64(2),
	}
}

func TestContainerStatsGroups(t *testing.T) {
	st := containerStats(fullStats())
	if st.Timestamp != time.Unix(1, 0) || st.CPUUsage != 3*time.Second || st.MemoryUsage != 100 ||
		st.MemoryWorkingSet != 90 || st.MemoryAnon != 40 || st.PIDs != 2 {
		t.Fatalf("plain fields %+v", st)
	}
	wantCPU := CPUStats{User: 2 * time.Second, System: time.Second, Periods: 10, ThrottledPeriods: 3, ThrottledTime: 1500 * time.Microsecond}
	if st.CPU == nil || *st.CPU != wantCPU {
		t.Errorf("CPU = %+v, want %+v", st.CPU, wantCPU)
	}
	wantMem := MemoryStats{Cache: 50, Kernel: 7, MappedFile: 8, Swap: 0, Peak: 120, LimitHits: 4, OOMKills: 0, PageFaults: 9, MajorPageFaults: 1}
	if st.Memory == nil || *st.Memory != wantMem {
		t.Errorf("Memory = %+v, want %+v", st.Memory, wantMem)
	}
	wantProc := ProcessStats{Threads: 5, ThreadsMax: 0, FileDescriptors: 12, Sockets: 2}
	if st.Processes == nil || *st.Processes != wantProc {
		t.Errorf("Processes = %+v, want %+v", st.Processes, wantProc)
	}

	// One unset field drops its group only.
	for _, tc := range []struct {
		name  string
		unset func(*agentpb.ContainerStatsResponse)
		group func(ContainerStats) bool // still set?
	}{
		{"nr_throttled", func(r *agentpb.ContainerStatsResponse) { r.CpuThrottledPeriods = nil }, func(s ContainerStats) bool { return s.CPU != nil }},
		{"memory.peak", func(r *agentpb.ContainerStatsResponse) { r.MemoryPeakBytes = nil }, func(s ContainerStats) bool { return s.Memory != nil }},
		{"oom_kill", func(r *agentpb.ContainerStatsResponse) { r.MemoryEventsOomKill = nil }, func(s ContainerStats) bool { return s.Memory != nil }},
		{"sockets", func(r *agentpb.ContainerStatsResponse) { r.Sockets = nil }, func(s ContainerStats) bool { return s.Processes != nil }},
		{"pids.max", func(r *agentpb.ContainerStatsResponse) { r.PidsMax = nil }, func(s ContainerStats) bool { return s.Processes != nil }},
	} {
		r := fullStats()
		tc.unset(r)
		st := containerStats(r)
		if tc.group(st) {
			t.Errorf("without %s its group is still set", tc.name)
		}
		if n := statBool(st.CPU != nil) + statBool(st.Memory != nil) + statBool(st.Processes != nil); n != 2 {
			t.Errorf("without %s, %d groups are set, want 2", tc.name, n)
		}
	}

	// An older agent sets none of them.
	old := &agentpb.ContainerStatsResponse{CpuUsageUsec: 1, MemoryUsageBytes: 2, Pids: 1}
	if st := containerStats(old); st.CPU != nil || st.Memory != nil || st.Processes != nil {
		t.Errorf("older agent: groups %+v %+v %+v, want none", st.CPU, st.Memory, st.Processes)
	}
}

func statBool(b bool) int {
	if b {
		return 1
	}
	return 0
}
