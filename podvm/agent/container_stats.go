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

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// maxCgroupFile bounds what is read of one cgroup file.
const maxCgroupFile = 64 << 10

// ContainerStats reads the container's cgroup v2 counters.
func (s *Service) ContainerStats(ctx context.Context, req *agentpb.ContainerStatsRequest) (*agentpb.ContainerStatsResponse, error) {
	if err := validateID(req.GetId()); err != nil {
		return nil, toStatus(fmt.Errorf("container stats: %w", err))
	}
	c, err := s.containers.get(req.GetId())
	if err != nil {
		return nil, toStatus(fmt.Errorf("container stats: %w", err))
	}
	st, err := readCgroupStats(filepath.Join(s.cfg.Containers.CgroupRoot, c.cgroup))
	if err != nil {
		return nil, toStatus(fmt.Errorf("container stats %q: %w", c.id, err))
	}
	return st, nil
}

// readCgroupStats reads the counters of the cgroup v2 directory dir. A
// controller file that is missing (controller not enabled) leaves its
// counters zero; a cgroup that is missing altogether is NotFound.
func readCgroupStats(dir string) (*agentpb.ContainerStatsResponse, error) {
	if _, err := os.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("cgroup %s: %w", dir, ErrNotFound)
		}
		return nil, err
	}
	st := &agentpb.ContainerStatsResponse{TimestampUnixNano: time.Now().UnixNano()}
	cpu, err := readKeyedFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return nil, err
	}
	st.CpuUsageUsec, st.CpuUserUsec, st.CpuSystemUsec = cpu["usage_usec"], cpu["user_usec"], cpu["system_usec"]
	mem, err := readKeyedFile(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return nil, err
	}
	st.MemoryAnonBytes, st.MemoryFileBytes = mem["anon"], mem["file"]
	if st.MemoryUsageBytes, err = readUintFile(filepath.Join(dir, "memory.current")); err != nil {
		return nil, err
	}
	if inactive := mem["inactive_file"]; inactive < st.MemoryUsageBytes {
		st.MemoryWorkingSetBytes = st.MemoryUsageBytes - inactive
	}
	if st.Pids, err = readUintFile(filepath.Join(dir, "pids.current")); err != nil {
		return nil, err
	}
	return st, nil
}

// readKeyedFile parses a flat keyed cgroup file ("key value" lines). A
// missing file gives an empty map.
func readKeyedFile(path string) (map[string]uint64, error) {
	data, err := readCgroupFile(path)
	if err != nil || data == nil {
		return map[string]uint64{}, err
	}
	out := make(map[string]uint64)
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

// readUintFile parses a single-value cgroup file; a missing file is zero.
func readUintFile(path string) (uint64, error) {
	data, err := readCgroupFile(path)
	if err != nil || data == nil {
		return 0, err
	}
	v, err := strconv.ParseUint(string(bytes.TrimSpace(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
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
