// Package hoststate inspects what tests and the conformance harness may
// leave on the host: processes and mounts. It only reads /proc, except
// UnmountAll.
package hoststate

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ProcessesMentioning lists the PIDs, other than the caller's, whose
// command line contains s.
func ProcessesMentioning(s string) []int {
	var pids []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// MountsUnder lists the mount points at or below dir, in mount order.
func MountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

// UnmountAll lazily unmounts what is left at or below dir, deepest first,
// so that a RemoveAll cannot reach into a mounted file system.
func UnmountAll(dir string) {
	m := MountsUnder(dir)
	for i := len(m) - 1; i >= 0; i-- {
		_ = syscall.Unmount(m[i], syscall.MNT_DETACH)
	}
}
