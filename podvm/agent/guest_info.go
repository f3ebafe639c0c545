package agent

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// GuestInfo reports the kernel release, memory, uptime, CPUs and the agent's
// version.
func (s *Service) GuestInfo(ctx context.Context, _ *agentpb.Empty) (*agentpb.GuestInfoResponse, error) {
	resp, err := s.guestInfo()
	if err != nil {
		return nil, toStatus(fmt.Errorf("guest info: %w", err))
	}
	return resp, nil
}

func (s *Service) guestInfo() (*agentpb.GuestInfoResponse, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return nil, fmt.Errorf("uname: %w", err)
	}
	meminfo, err := os.Open("/proc/meminfo")
	if err != nil {
		return nil, err
	}
	defer meminfo.Close()
	total, avail, err := parseMeminfo(meminfo)
	if err != nil {
		return nil, fmt.Errorf("/proc/meminfo: %w", err)
	}
	uptimeText, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return nil, err
	}
	uptime, err := parseUptime(string(uptimeText))
	if err != nil {
		return nil, fmt.Errorf("/proc/uptime: %w", err)
	}
	return &agentpb.GuestInfoResponse{
		KernelRelease:        unix.ByteSliceToString(uts.Release[:]),
		MemoryTotalBytes:     total,
		MemoryAvailableBytes: avail,
		UptimeSeconds:        uptime,
		Cpus:                 uint32(runtime.NumCPU()),
		AgentVersion:         s.cfg.Version,
	}, nil
}

// parseMeminfo returns MemTotal and MemAvailable in bytes.
func parseMeminfo(r io.Reader) (total, avail uint64, err error) {
	var haveTotal, haveAvail bool
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		var dst *uint64
		switch string(key) {
		case "MemTotal":
			dst, haveTotal = &total, true
		case "MemAvailable":
			dst, haveAvail = &avail, true
		default:
			continue
		}
		fields := strings.Fields(string(rest))
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, 0, fmt.Errorf("%s: unexpected value %q", key, rest)
		}
		kb, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil || kb > (1<<64-1)/1024 {
			return 0, 0, fmt.Errorf("%s: bad value %q", key, fields[0])
		}
		*dst = kb * 1024
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if !haveTotal || !haveAvail {
		return 0, 0, fmt.Errorf("MemTotal or MemAvailable missing")
	}
	return total, avail, nil
}

// parseUptime returns the first field of /proc/uptime, seconds since boot.
func parseUptime(s string) (float64, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return 0, fmt.Errorf("empty")
	}
	return strconv.ParseFloat(fields[0], 64)
}
