package main

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/podvisor/podvisor/cri"
	"github.com/podvisor/podvisor/cri/errdefs"
	"github.com/podvisor/podvisor/network"
	"github.com/podvisor/podvisor/podvm"
)

func TestCRIContainerStats(t *testing.T) {
	s := podvm.ContainerStats{
		Timestamp: time.Unix(5, 0), CPUUsage: 1, MemoryUsage: 2, MemoryWorkingSet: 3, MemoryAnon: 4, PIDs: 5,
		CPU: &podvm.CPUStats{User: 6, System: 7, Periods: 8, ThrottledPeriods: 9, ThrottledTime: 10},
		Memory: &podvm.MemoryStats{Cache: 11, Kernel: 12, MappedFile: 13, Swap: 14, Peak: 15,
			LimitHits: 16, OOMKills: 17, PageFaults: 18, MajorPageFaults: 19},
		Processes: &podvm.ProcessStats{Threads: 20, ThreadsMax: 21, FileDescriptors: 22, Sockets: 23},
	}
	want := cri.ContainerStats{
		Timestamp: time.Unix(5, 0), CPUUsage: 1, MemoryUsage: 2, MemoryWorkingSet: 3, MemoryRSS: 4, PIDs: 5,
		WritableLayerBytes: 24,
		CPU:                &cri.CPUStats{User: 6, System: 7, Periods: 8, ThrottledPeriods: 9, ThrottledTime: 10},
		Memory: &cri.MemoryStats{Cache: 11, Kernel: 12, MappedFile: 13, Swap: 14, MaxUsage: 15,
			LimitHits: 16, OOMEvents: 17, PageFaults: 18, MajorPageFaults: 19},
		Processes: &cri.ProcessStats{Threads: 20, ThreadsMax: 21, FileDescriptors: 22, Sockets: 23},
	}
	if got := criContainerStats(s, 24); !reflect.DeepEqual(got, want) {
		t.Errorf("criContainerStats =\n%+v\nwant\n%+v", got, want)
	}

	s.CPU, s.Memory, s.Processes = nil, nil, nil
	if got := criContainerStats(s, 24); got.CPU != nil || got.Memory != nil || got.Processes != nil {
		t.Errorf("groups podvm did not read: %+v %+v %+v, want nil", got.CPU, got.Memory, got.Processes)
	}
}

func TestNetworkErrNotFound(t *testing.T) {
	err := networkErr(fmt.Errorf("network stats of pod %q: %w", "p", network.ErrNotFound))
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("networkErr(ErrNotFound) = %v, want errdefs.ErrNotFound", err)
	}
}

func TestCRIInterfaceStats(t *testing.T) {
	in := network.InterfaceStats{Name: "eth0", RxBytes: 1, RxPackets: 2, RxErrors: 3, RxDropped: 4, TxBytes: 5, TxPackets: 6, TxErrors: 7, TxDropped: 8}
	want := cri.InterfaceStats{Name: "eth0", RxBytes: 1, RxPackets: 2, RxErrors: 3, RxDropped: 4, TxBytes: 5, TxPackets: 6, TxErrors: 7, TxDropped: 8}
	if got := criInterfaceStats(in); got != want {
		t.Errorf("criInterfaceStats = %+v, want %+v", got, want)
	}
}
