package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// Bounds on what one ContainerStats call reads, so a container cannot make
// the agent (PID 1) spend unbounded memory or time on it. A count that
// would exceed them is left unset instead of reported short.
const (
	// maxCgroupFile bounds what is read of one keyed or single-value
	// cgroup file.
	maxCgroupFile = 64 << 10
	// maxStatTasks bounds the lines read of cgroup.threads and
	// cgroup.procs.
	maxStatTasks = 1 << 16
	// maxStatFDs bounds the fds inspected across a container's processes.
	maxStatFDs = 1 << 16
)

// procRoot is the guest's procfs, where the fds of container processes
// are counted.
const procRoot = "/proc"

// ContainerStats reads the container's cgroup v2 counters.
func (s *Service) ContainerStats(ctx context.Context, req *agentpb.ContainerStatsRequest) (*agentpb.ContainerStatsResponse, error) {
	if err := validateID(req.GetId()); err != nil {
		return nil, toStatus(fmt.Errorf("container stats: %w", err))
	}
	c, err := s.containers.get(req.GetId())
	if err != nil {
		return nil, toStatus(fmt.Errorf("container stats: %w", err))
	}
	st, err := readCgroupStats(filepath.Join(s.cfg.Containers.CgroupRoot, c.cgroup), procRoot)
	if err != nil {
		return nil, toStatus(fmt.Errorf("container stats %q: %w", c.id, err))
	}
	return st, nil
}

// readCgroupStats reads the counters of the cgroup v2 directory dir, and
// counts the fds of its processes under procfs at proc. A controller file
// that is missing (controller not enabled) leaves the plain counters zero
// and the optional ones unset; a cgroup that is missing altogether is
// NotFound.
func readCgroupStats(dir, proc string) (*agentpb.ContainerStatsResponse, error) {
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("cgroup %s: %w", dir, ErrNotFound)
		}
		return nil, err
	}
	st := &agentpb.ContainerStatsResponse{TimestampUnixNano: time.Now().UnixNano()}
	for _, step := range []func(*agentpb.ContainerStatsResponse, string) error{readCPUStats, readMemoryStats, readPIDStats} {
		if err := step(st, dir); err != nil {
			return nil, err
		}
	}
	if err := readTaskStats(st, dir, proc); err != nil {
		return nil, err
	}
	return st, nil
}

func readCPUStats(st *agentpb.ContainerStatsResponse, dir string) error {
	cpu, err := readKeyedFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return err
	}
	st.CpuUsageUsec, st.CpuUserUsec, st.CpuSystemUsec = cpu["usage_usec"], cpu["user_usec"], cpu["system_usec"]
	st.CpuPeriods = cpu.opt("nr_periods")
	st.CpuThrottledPeriods = cpu.opt("nr_throttled")
	st.CpuThrottledUsec = cpu.opt("throttled_usec")
	return nil
}

// kernelMemoryParts are what memory.stat's kernel counter sums, for
// kernels that predate it.
var kernelMemoryParts = []string{"kernel_stack", "pagetables", "percpu", "vmalloc", "slab"}

func readMemoryStats(st *agentpb.ContainerStatsResponse, dir string) error {
	mem, err := readKeyedFile(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return err
	}
	st.MemoryAnonBytes, st.MemoryFileBytes = mem["anon"], mem["file"]
	if st.MemoryUsageBytes, err = readUintFile(filepath.Join(dir, "memory.current")); err != nil {
		return err
	}
	if inactive := mem["inactive_file"]; inactive < st.MemoryUsageBytes {
		st.MemoryWorkingSetBytes = st.MemoryUsageBytes - inactive
	}
	st.MemoryKernelBytes = mem.opt("kernel")
	if st.MemoryKernelBytes == nil && mem.has("kernel_stack") && mem.has("slab") {
		var sum uint64
		for _, k := range kernelMemoryParts {
			sum += mem[k]
		}
		st.MemoryKernelBytes = &sum
	}
	st.MemoryFileMappedBytes = mem.opt("file_mapped")
	st.MemoryPgfault = mem.opt("pgfault")
	st.MemoryPgmajfault = mem.opt("pgmajfault")
	if st.MemoryPeakBytes, err = readOptionalUintFile(filepath.Join(dir, "memory.peak")); err != nil {
		return err
	}
	if st.MemorySwapBytes, err = readOptionalUintFile(filepath.Join(dir, "memory.swap.current")); err != nil {
		return err
	}
	events, err := readKeyedFile(filepath.Join(dir, "memory.events"))
	if err != nil {
		return err
	}
	st.MemoryEventsMax = events.opt("max")
	st.MemoryEventsOomKill = events.opt("oom_kill")
	return nil
}

func readPIDStats(st *agentpb.ContainerStatsResponse, dir string) error {
	var err error
	if st.Pids, err = readUintFile(filepath.Join(dir, "pids.current")); err != nil {
		return err
	}
	path := filepath.Join(dir, "pids.max")
	data, err := readCgroupFile(path)
	if err != nil || data == nil {
		return err
	}
	var limit uint64 // "max": no limit
	if v := string(bytes.TrimSpace(data)); v != "max" {
		if limit, err = strconv.ParseUint(v, 10, 64); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	st.PidsMax = &limit
	return nil
}

// readTaskStats counts the cgroup's threads and the fds of its processes.
// Only the cgroup's own tasks count, not those of child cgroups: runc
// puts every container process in the container's cgroup.
func readTaskStats(st *agentpb.ContainerStatsResponse, dir, proc string) error {
	var threads uint64
	complete, err := scanTaskList(filepath.Join(dir, "cgroup.threads"), func(int) { threads++ })
	if err != nil {
		return err
	}
	if complete {
		st.Threads = &threads
	}
	var pids []int
	complete, err = scanTaskList(filepath.Join(dir, "cgroup.procs"), func(pid int) { pids = append(pids, pid) })
	if err != nil || !complete {
		return err
	}
	if fds, sockets, ok := countFDs(proc, pids); ok {
		st.FileDescriptors, st.Sockets = &fds, &sockets
	}
	return nil
}

// scanTaskList calls fn with each ID of a cgroup task list (cgroup.procs,
// cgroup.threads). complete is false when the file is missing or holds
// more than maxStatTasks IDs.
func scanTaskList(path string, fn func(id int)) (complete bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 0; sc.Scan(); n++ {
		if n == maxStatTasks {
			return false, nil
		}
		id, err := strconv.Atoi(string(bytes.TrimSpace(sc.Bytes())))
		if err != nil || id <= 0 {
			return false, fmt.Errorf("%s: bad task ID %q", path, sc.Bytes())
		}
		fn(id)
	}
	if err := sc.Err(); err != nil {
		// The cgroup went away while it was read.
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV) {
			return false, nil
		}
		return false, fmt.Errorf("%s: %w", path, err)
	}
	return true, nil
}

// readKeyedFile parses a flat keyed cgroup file ("key value" lines). A
// missing file gives an empty map.
func readKeyedFile(path string) (keyedValues, error) {
	data, err := readCgroupFile(path)
	if err != nil || data == nil {
		return keyedValues{}, err
	}
	out := make(keyedValues)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) != 2 {
			continue
		}
		if v, err := strconv.ParseUint(string(f[1]), 10, 64); err == nil {
			out[string(f[0])] = v
		}
	}
	return out, nil
}

// keyedValues are the values of a keyed cgroup file; a missing key reads
// as zero.
type keyedValues map[string]uint64

func (k keyedValues) has(key string) bool {
	_, ok := k[key]
	return ok
}

// opt returns the value of key, or nil when the file has no such key.
func (k keyedValues) opt(key string) *uint64 {
	v, ok := k[key]
	if !ok {
		return nil
	}
	return &v
}

// readUintFile parses a single-value cgroup file; a missing file is zero.
func readUintFile(path string) (uint64, error) {
	v, err := readOptionalUintFile(path)
	if v == nil {
		return 0, err
	}
	return *v, err
}

// readOptionalUintFile parses a single-value cgroup file; a missing file
// is nil.
func readOptionalUintFile(path string) (*uint64, error) {
	data, err := readCgroupFile(path)
	if err != nil || data == nil {
		return nil, err
	}
	v, err := strconv.ParseUint(string(bytes.TrimSpace(data)), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &v, nil
}

func readCgroupFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxCgroupFile))
}
