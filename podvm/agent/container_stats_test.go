package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// writeFiles writes name → content under dir, creating parent dirs.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeProcFDs makes proc/<pid>/fd with one symlink per target, as procfs
// shows open fds.
func fakeProcFDs(t *testing.T, proc string, pid int, targets ...string) {
	t.Helper()
	dir := filepath.Join(proc, fmt.Sprint(pid), "fd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, target := range targets {
		if err := os.Symlink(target, filepath.Join(dir, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
}

// baseCgroup is the content of every file the stats come from, as a 6.1
// guest kernel shows it for a container with the cpu, memory and pids
// controllers.
func baseCgroup() map[string]string {
	return map[string]string{
		"cpu.stat":            "usage_usec 2500\nuser_usec 1500\nsystem_usec 1000\nnr_periods 40\nnr_throttled 7\nthrottled_usec 35000\n",
		"memory.current":      "10485760\n",
		"memory.stat":         "anon 4096\nfile 8192\nkernel 12288\nkernel_stack 16384\nslab 999\nfile_mapped 2048\ninactive_file 1048576\npgfault 321\npgmajfault 5\nbogus line here\n",
		"memory.peak":         "20971520\n",
		"memory.swap.current": "0\n",
		"memory.events":       "low 0\nhigh 0\nmax 9\noom 2\noom_kill 1\noom_group_kill 0\n",
		"pids.current":        "3\n",
		"pids.max":            "128\n",
		"cgroup.threads":      "10\n11\n12\n20\n",
		"cgroup.procs":        "10\n20\n30\n",
	}
}

func u64(v uint64) *uint64 { return &v }

// optionalStats are the fields of a response that may be unset, by name.
func optionalStats(st *agentpb.ContainerStatsResponse) map[string]*uint64 {
	return map[string]*uint64{
		"cpu_periods": st.CpuPeriods, "cpu_throttled_periods": st.CpuThrottledPeriods, "cpu_throttled_usec": st.CpuThrottledUsec,
		"memory_kernel_bytes": st.MemoryKernelBytes, "memory_file_mapped_bytes": st.MemoryFileMappedBytes,
		"memory_pgfault": st.MemoryPgfault, "memory_pgmajfault": st.MemoryPgmajfault,
		"memory_peak_bytes": st.MemoryPeakBytes, "memory_swap_bytes": st.MemorySwapBytes,
		"memory_events_max": st.MemoryEventsMax, "memory_events_oom_kill": st.MemoryEventsOomKill,
		"pids_max": st.PidsMax, "threads": st.Threads, "file_descriptors": st.FileDescriptors, "sockets": st.Sockets,
	}
}

func TestReadCgroupStats(t *testing.T) {
	dir, proc := t.TempDir(), t.TempDir()
	writeFiles(t, dir, baseCgroup())
	fakeProcFDs(t, proc, 10, "/dev/null", "socket:[1234]", "pipe:[5]", "socket:[77]")
	fakeProcFDs(t, proc, 20, "/dev/null", "anon_inode:[eventfd]")
	// pid 30 exited between cgroup.procs and its fd dir: it counts for
	// nothing.

	st, err := readCgroupStats(dir, proc)
	if err != nil {
		t.Fatal(err)
	}
	if st.CpuUsageUsec != 2500 || st.CpuUserUsec != 1500 || st.CpuSystemUsec != 1000 ||
		st.MemoryUsageBytes != 10485760 || st.MemoryWorkingSetBytes != 10485760-1048576 ||
		st.MemoryAnonBytes != 4096 || st.MemoryFileBytes != 8192 || st.Pids != 3 || st.TimestampUnixNano == 0 {
		t.Fatalf("stats %+v", st)
	}
	want := map[string]uint64{
		"cpu_periods": 40, "cpu_throttled_periods": 7, "cpu_throttled_usec": 35000,
		"memory_kernel_bytes": 12288, "memory_file_mapped_bytes": 2048, "memory_pgfault": 321, "memory_pgmajfault": 5,
		"memory_peak_bytes": 20971520, "memory_swap_bytes": 0, "memory_events_max": 9, "memory_events_oom_kill": 1,
		"pids_max": 128, "threads": 4, "file_descriptors": 6, "sockets": 2,
	}
	for name, got := range optionalStats(st) {
		if got == nil || *got != want[name] {
			t.Errorf("%s = %v, want %d", name, got, want[name])
		}
	}

	// inactive_file above usage (the counters are read at different
	// moments) must not wrap around.
	writeFiles(t, dir, map[string]string{"memory.stat": "inactive_file 99999999\n"})
	if st, _ := readCgroupStats(dir, proc); st.MemoryWorkingSetBytes != 0 {
		t.Fatalf("working set %d, want 0", st.MemoryWorkingSetBytes)
	}

	// Missing controller files leave zeros; a malformed one is an error.
	os.Remove(filepath.Join(dir, "pids.current"))
	if st, err := readCgroupStats(dir, proc); err != nil || st.Pids != 0 {
		t.Fatalf("missing pids.current: %+v, %v", st, err)
	}
	writeFiles(t, dir, map[string]string{"memory.current": "max\n"})
	if _, err := readCgroupStats(dir, proc); err == nil {
		t.Fatal("malformed memory.current accepted")
	}
	if _, err := readCgroupStats(filepath.Join(dir, "gone"), proc); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing cgroup: %v, want ErrNotFound", err)
	}
}

func TestReadCgroupStatsOptional(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change map[string]string // "" removes the file
		want   map[string]*uint64
	}{{
		name: "no cpu controller",
		// cpu.stat of a cgroup without the cpu controller.
		change: map[string]string{"cpu.stat": "usage_usec 2500\nuser_usec 1500\nsystem_usec 1000\n"},
		want:   map[string]*uint64{"cpu_periods": nil, "cpu_throttled_periods": nil, "cpu_throttled_usec": nil},
	}, {
		name:   "kernel counter missing",
		change: map[string]string{"memory.stat": "file 1\nkernel_stack 100\npagetables 20\npercpu 3\nvmalloc 4000\nslab 50000\nsock 7\n"},
		want:   map[string]*uint64{"memory_kernel_bytes": u64(54123)},
	}, {
		name:   "no kernel counters at all",
		change: map[string]string{"memory.stat": "file 1\nslab 50000\n"},
		want:   map[string]*uint64{"memory_kernel_bytes": nil, "memory_file_mapped_bytes": nil, "memory_pgfault": nil, "memory_pgmajfault": nil},
	}, {
		name:   "no memory.peak, swap or events",
		change: map[string]string{"memory.peak": "", "memory.swap.current": "", "memory.events": ""},
		want:   map[string]*uint64{"memory_peak_bytes": nil, "memory_swap_bytes": nil, "memory_events_max": nil, "memory_events_oom_kill": nil},
	}, {
		name:   "unlimited pids",
		change: map[string]string{"pids.max": "max\n"},
		want:   map[string]*uint64{"pids_max": u64(0)},
	}, {
		name:   "no pids controller",
		change: map[string]string{"pids.max": "", "pids.current": ""},
		want:   map[string]*uint64{"pids_max": nil},
	}, {
		name:   "no task lists",
		change: map[string]string{"cgroup.threads": "", "cgroup.procs": ""},
		want:   map[string]*uint64{"threads": nil, "file_descriptors": nil, "sockets": nil},
	}, {
		name:   "too many threads to count",
		change: map[string]string{"cgroup.threads": strings.Repeat("7\n", maxStatTasks+1)},
		want:   map[string]*uint64{"threads": nil, "file_descriptors": u64(1)},
	}, {
		name:   "too many processes to count",
		change: map[string]string{"cgroup.procs": strings.Repeat("10\n", maxStatTasks+1)},
		want:   map[string]*uint64{"threads": u64(1), "file_descriptors": nil, "sockets": nil},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			dir, proc := t.TempDir(), t.TempDir()
			files := baseCgroup()
			files["cgroup.threads"], files["cgroup.procs"] = "10\n", "10\n"
			for name, data := range tc.change {
				if data == "" {
					delete(files, name)
				} else {
					files[name] = data
				}
			}
			writeFiles(t, dir, files)
			fakeProcFDs(t, proc, 10, "socket:[1]")
			st, err := readCgroupStats(dir, proc)
			if err != nil {
				t.Fatal(err)
			}
			got := optionalStats(st)
			for name, want := range tc.want {
				switch g := got[name]; {
				case want == nil && g != nil:
					t.Errorf("%s = %d, want unset", name, *g)
				case want != nil && (g == nil || *g != *want):
					t.Errorf("%s = %v, want %d", name, g, *want)
				}
			}
		})
	}
}

func TestReadCgroupStatsEmptyCgroup(t *testing.T) {
	dir := t.TempDir()
	files := baseCgroup()
	files["cgroup.threads"], files["cgroup.procs"] = "", ""
	writeFiles(t, dir, files)
	st, err := readCgroupStats(dir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if st.GetThreads() != 0 || st.Threads == nil || st.FileDescriptors == nil || st.GetFileDescriptors() != 0 {
		t.Fatalf("empty cgroup: threads %v, fds %v; want 0 and 0", st.Threads, st.FileDescriptors)
	}
}

func TestReadCgroupStatsBadTaskList(t *testing.T) {
	dir := t.TempDir()
	files := baseCgroup()
	files["cgroup.procs"] = "10\nnot-a-pid\n"
	writeFiles(t, dir, files)
	if _, err := readCgroupStats(dir, t.TempDir()); err == nil {
		t.Fatal("malformed cgroup.procs accepted")
	}
}

func TestCountFDs(t *testing.T) {
	proc := t.TempDir()
	fakeProcFDs(t, proc, 1, "socket:[1]", "/dev/null", "socket:[2]")
	fakeProcFDs(t, proc, 2, "socket:") // not "socket:[…": a file of that name
	if fds, sockets, ok := countFDs(proc, []int{1, 2, 3}); !ok || fds != 4 || sockets != 2 {
		t.Fatalf("countFDs = %d, %d, %v; want 4, 2, true", fds, sockets, ok)
	}

	// A fd dir that cannot be listed (here not a directory) leaves the
	// count unset rather than short.
	writeFiles(t, proc, map[string]string{"4/fd": "not a dir"})
	if _, _, ok := countFDs(proc, []int{1, 4}); ok {
		t.Fatal("unlistable fd dir counted")
	}

	if _, _, err := processFDs(filepath.Join(proc, "1", "fd"), 2); !errors.Is(err, errTooManyFDs) {
		t.Fatalf("processFDs above its limit: %v, want errTooManyFDs", err)
	}
	if fds, _, err := processFDs(filepath.Join(proc, "1", "fd"), 3); err != nil || fds != 3 {
		t.Fatalf("processFDs at its limit: %d, %v", fds, err)
	}
}
