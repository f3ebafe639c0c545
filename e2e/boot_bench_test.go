//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podvisor/podvisor/e2e/hoststate"
	"github.com/podvisor/podvisor/podvm"
)

// bootSamples is how many VMs each boot benchmark starts.
const bootSamples = 10

// initMarker is the first line the agent prints on the console as /init.
const initMarker = "podvisor-agent: init"

// BenchmarkBoot measures pod VM boot to agent-ready through podvm, a bare
// qemu-system-x86_64 booting the same kernel and initramfs to /init as the
// baseline, and the host memory (VMM + virtiofsd RSS) of an idle VM. It
// prints one table.
func BenchmarkBoot(b *testing.B) {
	e := newEnv(b, "")
	var ready, bare []time.Duration
	var rss []int64
	for i := 0; i < bootSamples; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		start := time.Now()
		vm, err := e.mgr.Boot(ctx, podvm.Spec{ID: fmt.Sprintf("bench-%d", i), VCPUs: 1, MemoryMiB: 256, SharedDir: e.sharedDir()})
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		ready = append(ready, time.Since(start))
		time.Sleep(2 * time.Second) // let the guest settle before reading its idle footprint
		rss = append(rss, vmRSS(e.stateDir))
		if err := vm.Stop(context.Background()); err != nil {
			b.Fatal(err)
		}
		d, err := bareQEMUToInit(b)
		if err != nil {
			b.Fatal(err)
		}
		bare = append(bare, d)
	}
	p50r, p90r := percentiles(ready)
	p50b, p90b := percentiles(bare)
	sort.Slice(rss, func(i, j int) bool { return rss[i] < rss[j] })
	medRSS := rss[len(rss)/2]
	b.ReportMetric(float64(p50r.Milliseconds()), "ready-p50-ms")
	b.ReportMetric(float64(p50b.Milliseconds()), "bare-p50-ms")
	b.ReportMetric(float64(medRSS)/1024, "rss-MiB")
	fmt.Printf("\nPod VM boot (QEMU, %d boots each, 1 vCPU, 256 MiB)\n", bootSamples)
	fmt.Printf("%-44s %10s %10s\n", "measure", "p50", "p90")
	fmt.Printf("%-44s %10s %10s\n", "podvm Boot → agent ready (authenticated)", ms(p50r), ms(p90r))
	fmt.Printf("%-44s %10s %10s\n", "bare qemu-system-x86_64 → /init on console", ms(p50b), ms(p90b))
	fmt.Printf("%-44s %10.2f %10.2f\n", "ratio (podvm / bare)", float64(p50r)/float64(p50b), float64(p90r)/float64(p90b))
	fmt.Printf("%-44s %9.1fM\n", "host RSS per idle VM (VMM + virtiofsd), median", float64(medRSS)/1024)
}

// bareQEMUToInit boots the guest image with a plain QEMU command line and
// returns the time until /init announces itself on the serial console.
func bareQEMUToInit(b *testing.B) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-machine", "q35", "-accel", "tcg", "-smp", "1", "-m", "256",
		"-kernel", filepath.Join(guestDir, "vmlinuz"),
		"-initrd", filepath.Join(guestDir, "initramfs.img"),
		"-append", "console=ttyS0 quiet panic=-1",
		"-serial", "stdio")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.Contains(sc.Text(), initMarker) {
			return time.Since(start), nil
		}
	}
	return 0, fmt.Errorf("bare qemu: %q never appeared on the console", initMarker)
}

// vmRSS sums the resident memory (KiB) of every process serving VMs under
// stateDir.
func vmRSS(stateDir string) int64 {
	var total int64
	for _, pid := range hoststate.ProcessesMentioning(stateDir) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				total += kb
			}
		}
	}
	return total
}

func percentiles(d []time.Duration) (p50, p90 time.Duration) {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)*50/100], s[min(len(s)-1, len(s)*90/100)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }
