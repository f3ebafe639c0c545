//go:build e2e

package podvm

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFreedGuestMemoryReturnsToHost fills 96 MiB of the guest's /tmp and
// removes it again: the guest's balloon reports the freed pages and the
// VMM's resident guest memory falls back, instead of staying at the
// container's high-water mark.
func TestFreedGuestMemoryReturnsToHost(t *testing.T) {
	var owner *VM
	vm := bootWithBusybox(t, "mem", &owner)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pid := vm.vmm.State().PID
	run := func(id, script string) {
		t.Helper()
		p, err := vm.Start(ctx, ProcessSpec{ID: id, Args: []string{GuestSharedDir + "/busybox", "sh", "-c", script}})
		if err != nil {
			t.Fatal(err)
		}
		st, err := p.Wait(ctx)
		if err != nil || st.Code != 0 {
			t.Fatalf("%s: %+v %v", script, st, err)
		}
		p.Remove(ctx)
	}
	const mib = 1 << 20
	// Guest memory is a shared memfd (virtiofsd maps it), so it is the
	// VMM's shared resident memory.
	base := rssShmem(t, pid)
	run("fill", "busybox dd if=/dev/zero of=/tmp/fill bs=1M count=96 2>/dev/null")
	peak := rssShmem(t, pid)
	t.Logf("guest memory resident on the host: %d MiB idle, %d MiB with 96 MiB in /tmp", base/mib, peak/mib)
	if peak-base < 64*mib {
		t.Fatalf("filling the guest grew the VMM by only %d MiB", (peak-base)/mib)
	}
	run("free", "busybox rm /tmp/fill")
	deadline := time.Now().Add(time.Minute)
	for {
		now := rssShmem(t, pid)
		if peak-now >= 64*mib {
			t.Logf("after removing it: %d MiB", now/mib)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("freed guest memory not returned: %d MiB resident a minute after the guest freed 96 MiB (peak %d MiB)", now/mib, peak/mib)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// rssShmem is the shared resident memory of process pid, in bytes.
func rssShmem(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "RssShmem:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal(fmt.Errorf("no RssShmem in /proc/%d/status", pid))
	return 0
}
