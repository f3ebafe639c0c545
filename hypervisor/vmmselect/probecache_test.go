package vmmselect

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCachedProbe(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernel, []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	bootID := filepath.Join(dir, "boot_id")
	os.WriteFile(bootID, []byte("boot-1\n"), 0o644)
	old := bootIDPath
	bootIDPath = bootID
	t.Cleanup(func() { bootIDPath = old })

	cache := filepath.Join(dir, "state", "kvm-probe.json")
	probes := 0
	probe := func() (bool, string) { probes++; return false, "no kernel banner" }

	if kvm, why := cachedProbe(cache, kernel, probe); kvm || why != "no kernel banner" || probes != 1 {
		t.Fatalf("first call: %v %q probes=%d", kvm, why, probes)
	}
	kvm, why := cachedProbe(cache, kernel, probe)
	if kvm || probes != 1 || !strings.Contains(why, "cached") {
		t.Fatalf("second call must be cached: %v %q probes=%d", kvm, why, probes)
	}
	// A new host boot or a new kernel probes again.
	os.WriteFile(bootID, []byte("boot-2\n"), 0o644)
	cachedProbe(cache, kernel, probe)
	if probes != 2 {
		t.Fatalf("after a reboot: probes=%d, want 2", probes)
	}
	later := time.Now().Add(time.Hour)
	os.Chtimes(kernel, later, later)
	cachedProbe(cache, kernel, probe)
	if probes != 3 {
		t.Fatalf("after a kernel change: probes=%d, want 3", probes)
	}
	// A corrupt cache costs only the probe.
	os.WriteFile(cache, []byte("{"), 0o600)
	cachedProbe(cache, kernel, probe)
	if probes != 4 {
		t.Fatalf("corrupt cache: probes=%d, want 4", probes)
	}
	// No cache file configured: always probe.
	cachedProbe("", kernel, probe)
	if probes != 5 {
		t.Fatalf("no cache: probes=%d, want 5", probes)
	}
}
