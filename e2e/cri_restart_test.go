//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/e2e/hoststate"
)

// TestDaemonRestartKeepsPods restarts the daemon while pods run: a running
// pod survives and stays usable (status, logs with nothing lost, exec,
// stop, remove), and a pod whose VM died while the daemon was down shows
// as not ready with its container exited.
func TestDaemonRestartKeepsPods(t *testing.T) {
	d := startDaemon(t)
	d.mustCrictl("pull", imageBusybox)
	keepCfg := d.podJSON("keep", "")
	keep := d.mustCrictl("runp", keepCfg)
	ticker := d.mustCrictl("create", keep, d.containerJSON("ticker", 0, imageBusybox,
		[]string{"sh", "-c", "i=0; while true; do echo seq $i; i=$((i+1)); sleep 0.1; done"}, ""), keepCfg)
	d.mustCrictl("start", ticker)
	lostCfg := d.podJSON("lost", "")
	lost := d.mustCrictl("runp", lostCfg)
	lostCtr := d.mustCrictl("create", lost, d.containerJSON("sleeper", 0, imageBusybox, []string{"sleep", "3600"}, ""), lostCfg)
	d.mustCrictl("start", lostCtr)
	waitFor(t, time.Minute, "ticker output", func() (bool, string) {
		out, err := d.crictl("logs", ticker)
		return err == nil && strings.Contains(out, "seq 5\n"), out
	})

	out, _ := d.crictl("logs", ticker)
	before := checkSequence(t, out, true)
	d.stop()
	// While the daemon is down: the ticker keeps writing, and the other
	// pod's VM dies.
	pids := hoststate.ProcessesMentioning(d.state + "-vms/" + lost[:16])
	if len(pids) == 0 {
		t.Fatalf("no VMM process found for pod %s", lost)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	time.Sleep(3 * time.Second)
	d.start()

	// The surviving pod and its container.
	if st := d.podStatus(t, keep); st.State != runtime.PodSandboxState_SANDBOX_READY {
		t.Errorf("pod after restart: %s", st.State)
	}
	if s := d.containerStatus(t, ticker); s.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("container after restart: %s", s.State)
	}
	if got := d.mustCrictl("exec", ticker, "echo", "still-here"); got != "still-here" {
		t.Errorf("exec after restart: %q", got)
	}
	// Logs keep growing, and no line written while the daemon was down is
	// missing.
	want := fmt.Sprintf("seq %d\n", before+100)
	waitFor(t, 2*time.Minute, "log lines after the restart", func() (bool, string) {
		out, _ := d.crictl("logs", ticker)
		return strings.Contains(out, want), fmt.Sprint(checkSequence(t, out, false))
	})
	out, _ = d.crictl("logs", ticker)
	checkSequence(t, out, true)

	// The pod whose VM died.
	if st := d.podStatus(t, lost); st.State != runtime.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("pod with a dead VM: %s", st.State)
	}
	if s := d.containerStatus(t, lostCtr); s.State != runtime.ContainerState_CONTAINER_EXITED || s.Reason == "" {
		t.Errorf("container of a dead VM: %s reason %q", s.State, s.Reason)
	}

	// Everything can still be stopped and removed.
	d.mustCrictl("stop", "--timeout", "5", ticker)
	d.mustCrictl("rm", ticker)
	for _, p := range []string{keep, lost} {
		d.mustCrictl("stopp", p)
		d.mustCrictl("rmp", p)
	}
}

// podStatus returns a pod's status through CRI.
func (d *daemon) podStatus(t testing.TB, id string) *runtime.PodSandboxStatus {
	t.Helper()
	resp, err := d.rt.PodSandboxStatus(ctxFor(t, time.Minute), &runtime.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		t.Fatalf("PodSandboxStatus %s: %v", id, err)
	}
	return resp.Status
}

// checkSequence checks that the "seq N" lines of out count up from 0
// without a gap or repeat and returns the last N; report selects whether a
// gap fails the test (else it returns -1).
func checkSequence(t *testing.T, out string, report bool) int {
	t.Helper()
	want := 0
	for _, line := range strings.Split(out, "\n") {
		n, err := strconv.Atoi(strings.TrimPrefix(line, "seq "))
		if !strings.HasPrefix(line, "seq ") || err != nil {
			continue
		}
		if n != want {
			if report {
				t.Errorf("log sequence: got seq %d where seq %d was due", n, want)
			}
			return -1
		}
		want++
	}
	return want - 1
}

// TestDaemonCrashDuringBoot kills the daemon while RunPodSandbox is
// booting a pod: the next daemon removes the half-built pod's VM, network
// and directories (the harness checks the host once the test ends).
func TestDaemonCrashDuringBoot(t *testing.T) {
	d := startDaemon(t)
	cfg := d.podJSON("crash", "")
	go d.crictl("runp", cfg)
	// Wait until the VMM runs, then crash mid-boot.
	waitFor(t, time.Minute, "a VMM for the booting pod", func() (bool, string) {
		return len(hoststate.ProcessesMentioning(d.state+"-vms/")) > 0, ""
	})
	time.Sleep(time.Second)
	d.crash()
	d.start()
	waitFor(t, time.Minute, "the half-built pod to be removed", func() (bool, string) {
		vms, _ := os.ReadDir(d.state + "-vms")
		netns, _ := os.ReadDir(filepath.Join(d.state, "network", "netns"))
		left := hoststate.ProcessesMentioning(d.state + "-vms/")
		return len(vms) == 0 && len(netns) == 0 && len(left) == 0, fmt.Sprintf("vm dirs %d, netns %d, processes %v", len(vms), len(netns), left)
	})
	if out := d.mustCrictl("pods", "-q"); out != "" {
		t.Errorf("pods after the crash: %q", out)
	}
}
