package agent

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestReadCgroupStats(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"cpu.stat":       "usage_usec 2500\nuser_usec 1500\nsystem_usec 1000\nnr_periods 0\n",
		"memory.current": "10485760\n",
		"memory.stat":    "anon 4096\nfile 8192\ninactive_file 1048576\nbogus line here\n",
		"pids.current":   "3\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := readCgroupStats(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.CpuUsageUsec != 2500 || st.CpuUserUsec != 1500 || st.CpuSystemUsec != 1000 ||
		st.MemoryUsageBytes != 10485760 || st.MemoryWorkingSetBytes != 10485760-1048576 ||
		st.MemoryAnonBytes != 4096 || st.MemoryFileBytes != 8192 || st.Pids != 3 || st.TimestampUnixNano == 0 {
		t.Fatalf("stats %+v", st)
	}

	// inactive_file above usage (the counters are read at different
	// moments) must not wrap around.
	os.WriteFile(filepath.Join(dir, "memory.stat"), []byte("inactive_file 99999999\n"), 0o644)
	if st, _ := readCgroupStats(dir); st.MemoryWorkingSetBytes != 0 {
		t.Fatalf("working set %d, want 0", st.MemoryWorkingSetBytes)
	}

	// Missing controller files leave zeros; a malformed one is an error.
	os.Remove(filepath.Join(dir, "pids.current"))
	if st, err := readCgroupStats(dir); err != nil || st.Pids != 0 {
		t.Fatalf("missing pids.current: %+v, %v", st, err)
	}
	os.WriteFile(filepath.Join(dir, "memory.current"), []byte("max\n"), 0o644)
	if _, err := readCgroupStats(dir); err == nil {
		t.Fatal("malformed memory.current accepted")
	}
	if _, err := readCgroupStats(filepath.Join(dir, "gone")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing cgroup: %v, want ErrNotFound", err)
	}
}
