package initsys

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestUserProcessesIgnoresKernelThreads(t *testing.T) {
	proc := t.TempDir()
	write := func(pid, stat string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(proc, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, pid, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("1", "1 (podvisor-agent) S 0 1 1 0")
	write("2", "2 (kthreadd) S 0 0 0 0")
	write("13", "13 (kworker/0:1-events) I 2 0 0 0")
	write("77", "77 (ksoftirqd/0) S 2 0 0 0")
	if n := userProcesses(proc); n != 0 {
		t.Fatalf("kernel threads only: %d user processes, want 0", n)
	}
	write("300", "300 (weird) name) (x) Z 1 300 300 0")
	if n := userProcesses(proc); n != 0 {
		t.Fatalf("a zombie counts as gone: got %d", n)
	}
	write("301", "301 (sleep) S 300 301 301 0")
	if n := userProcesses(proc); n != 1 {
		t.Fatalf("one user process: got %d", n)
	}
	start := time.Now()
	os.RemoveAll(filepath.Join(proc, "301"))
	waitNoProcesses(proc, 5*time.Second)
	if time.Since(start) > time.Second {
		t.Errorf("waitNoProcesses waited %s with no user process left", time.Since(start))
	}
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		stat  string
		ppid  int
		state string
		ok    bool
	}{
		{"42 (sh) S 7 42 42 0", 7, "S", true},
		{"42 (a) b) R 9 1 1", 9, "R", true},
		{"garbage", 0, "", false},
		{"42 (x) S", 0, "", false},
	} {
		ppid, state, ok := parseStat(tc.stat)
		if ppid != tc.ppid || state != tc.state || ok != tc.ok {
			t.Errorf("parseStat(%q) = %d %q %v", tc.stat, ppid, state, ok)
		}
	}
}
