package podvm

import (
	"context"
	"fmt"
	"time"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// ContainerStats are a container's cgroup counters in the guest.
type ContainerStats struct {
	Timestamp        time.Time
	CPUUsage         time.Duration
	MemoryUsage      uint64
	MemoryWorkingSet uint64
	MemoryAnon       uint64
	PIDs             uint64
	// CPU, Memory and Processes are set only when the agent read every
	// field of them: a controller that is not enabled, a guest kernel
	// without one of the files, or an older agent leaves them nil.
	CPU       *CPUStats
	Memory    *MemoryStats
	Processes *ProcessStats
}

// CPUStats are cpu.stat counters.
type CPUStats struct {
	User, System time.Duration
	// Periods, ThrottledPeriods and ThrottledTime are nr_periods,
	// nr_throttled and throttled_usec.
	Periods, ThrottledPeriods uint64
	ThrottledTime             time.Duration
}

// MemoryStats are memory controller counters.
type MemoryStats struct {
	Cache      uint64 // memory.stat file
	Kernel     uint64 // memory.stat kernel
	MappedFile uint64 // memory.stat file_mapped
	Swap       uint64 // memory.swap.current
	Peak       uint64 // memory.peak
	// LimitHits and OOMKills are memory.events max and oom_kill.
	LimitHits, OOMKills uint64
	// PageFaults and MajorPageFaults are memory.stat pgfault and
	// pgmajfault.
	PageFaults, MajorPageFaults uint64
}

// ProcessStats count what the container's processes hold.
type ProcessStats struct {
	Threads    uint64 // tasks in cgroup.threads
	ThreadsMax uint64 // pids.max; 0 is unlimited
	// FileDescriptors and Sockets are the open fds, and the socket fds
	// among them, of the processes in cgroup.procs.
	FileDescriptors, Sockets uint64
}

// ContainerStats reads a container's cgroup counters in the guest.
func (v *VM) ContainerStats(ctx context.Context, id string) (ContainerStats, error) {
	r, err := v.agent.client.ContainerStats(ctx, &agentpb.ContainerStatsRequest{Id: id})
	if err != nil {
		return ContainerStats{}, fmt.Errorf("container stats %q: %w", id, err)
	}
	return containerStats(r), nil
}

func containerStats(r *agentpb.ContainerStatsResponse) ContainerStats {
	st := ContainerStats{
		Timestamp:        time.Unix(0, r.GetTimestampUnixNano()),
		CPUUsage:         usec(r.GetCpuUsageUsec()),
		MemoryUsage:      r.GetMemoryUsageBytes(),
		MemoryWorkingSet: r.GetMemoryWorkingSetBytes(),
		MemoryAnon:       r.GetMemoryAnonBytes(),
		PIDs:             r.GetPids(),
	}
	if allSet(r.CpuPeriods, r.CpuThrottledPeriods, r.CpuThrottledUsec) {
		st.CPU = &CPUStats{
			User: usec(r.GetCpuUserUsec()), System: usec(r.GetCpuSystemUsec()),
			Periods: r.GetCpuPeriods(), ThrottledPeriods: r.GetCpuThrottledPeriods(), ThrottledTime: usec(r.GetCpuThrottledUsec()),
		}
	}
	// memory.stat's file (Cache) is a plain field: the agent read it when
	// it read the optional memory.stat counters.
	if allSet(r.MemoryKernelBytes, r.MemoryFileMappedBytes, r.MemoryPgfault, r.MemoryPgmajfault,
		r.MemoryPeakBytes, r.MemorySwapBytes, r.MemoryEventsMax, r.MemoryEventsOomKill) {
		st.Memory = &MemoryStats{
			Cache: r.GetMemoryFileBytes(), Kernel: r.GetMemoryKernelBytes(), MappedFile: r.GetMemoryFileMappedBytes(),
			Swap: r.GetMemorySwapBytes(), Peak: r.GetMemoryPeakBytes(),
			LimitHits: r.GetMemoryEventsMax(), OOMKills: r.GetMemoryEventsOomKill(),
			PageFaults: r.GetMemoryPgfault(), MajorPageFaults: r.GetMemoryPgmajfault(),
		}
	}
	if allSet(r.Threads, r.PidsMax, r.FileDescriptors, r.Sockets) {
		st.Processes = &ProcessStats{
			Threads: r.GetThreads(), ThreadsMax: r.GetPidsMax(),
			FileDescriptors: r.GetFileDescriptors(), Sockets: r.GetSockets(),
		}
	}
	return st
}

func usec(u uint64) time.Duration { return time.Duration(u) * time.Microsecond }

func allSet(fields ...*uint64) bool {
	for _, f := range fields {
		if f == nil {
			return false
		}
	}
	return true
}
