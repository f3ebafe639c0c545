//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podJSON is a crictl pod config with a log directory in the daemon's dir.
func (d *daemon) podJSON(name, extra string) string {
	logDir := filepath.Join(d.dir, "logs", name)
	return d.writeJSON("pod-"+name+".json", fmt.Sprintf(`{
  "metadata": {"name": %q, "namespace": "e2e", "uid": "uid-%s", "attempt": 0},
  "hostname": "host-%s",
  "log_directory": %q,
  "linux": {}%s
}`, name, name, name, logDir, extra))
}

// containerJSON is a crictl container config running args in image.
func (d *daemon) containerJSON(name string, attempt int, image string, args []string, extra string) string {
	a, _ := json.Marshal(args)
	return d.writeJSON(fmt.Sprintf("ctr-%s-%d.json", name, attempt), fmt.Sprintf(`{
  "metadata": {"name": %q, "attempt": %d},
  "image": {"image": %q},
  "args": %s,
  "log_path": "%s_%d.log",
  "linux": {}%s
}`, name, attempt, image, a, name, attempt, extra))
}

// waitFor polls cond every 200 ms until it is true or the timeout ends.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, s := cond()
		if ok {
			return
		}
		last = s
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, last)
}

// containerState returns a container's state through CRI.
func (d *daemon) containerStatus(t testing.TB, id string) *runtime.ContainerStatus {
	t.Helper()
	resp, err := d.rt.ContainerStatus(ctxFor(t, time.Minute), &runtime.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	return resp.Status
}

// TestCrictlLifecycle drives one pod with crictl the way an operator would:
// pull, run a pod with two containers, logs, exec, exit codes, restart of a
// container in the pod, stats, stop and remove.
func TestCrictlLifecycle(t *testing.T) {
	d := startDaemon(t)

	d.mustCrictl("pull", imageBusybox)
	inspect := d.mustCrictl("inspecti", imageBusybox)
	if want := registryDigests[imageBusybox]; !strings.Contains(inspect, want) {
		t.Errorf("inspecti does not report repo digest %s:\n%s", want, inspect)
	}
	// A short name resolves to docker.io/library, served by the mirror.
	d.mustCrictl("pull", "busybox")
	if out := d.mustCrictl("images"); !strings.Contains(out, "docker.io/library/busybox") {
		t.Errorf("short name not listed as docker.io/library/busybox:\n%s", out)
	}

	pod := d.mustCrictl("runp", d.podJSON("life", ""))
	longLine := strings.Repeat("x", 40000)
	ticker := d.mustCrictl("create", pod, d.containerJSON("ticker", 0, imageBusybox,
		[]string{"sh", "-c", "echo hello; echo warn >&2; printf '" + longLine + "\\n'; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"}, ""),
		d.podJSON("life", ""))
	failing := d.mustCrictl("create", pod, d.containerJSON("failing", 0, imageBusybox, []string{"sh", "-c", "echo bye; exit 3"}, ""), d.podJSON("life", ""))
	d.mustCrictl("start", ticker)
	d.mustCrictl("start", failing)

	// Logs: both streams, and a 40000-byte line split into partial lines
	// on disk but whole through crictl logs.
	waitFor(t, time.Minute, "ticker output", func() (bool, string) {
		out, err := d.crictl("logs", ticker)
		return err == nil && strings.Contains(out, "tick 2"), out
	})
	out, err := d.crictl("logs", ticker)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "hello\n") || !strings.Contains(out, "\n"+longLine+"\n") {
		t.Errorf("crictl logs lacks hello or the long line (%d bytes)", len(out))
	}
	st := d.containerStatus(t, ticker)
	raw, err := os.ReadFile(st.LogPath)
	if err != nil {
		t.Fatalf("log file %q: %v", st.LogPath, err)
	}
	checkCRILogFormat(t, string(raw))

	// Exit code of a container that ended, then a restart in the same pod.
	waitFor(t, time.Minute, "failing container to exit", func() (bool, string) {
		s := d.containerStatus(t, failing)
		return s.State == runtime.ContainerState_CONTAINER_EXITED, s.State.String()
	})
	if s := d.containerStatus(t, failing); s.ExitCode != 3 || s.Reason != "Error" || s.FinishedAt == 0 {
		t.Errorf("exited container: code %d reason %q finished %d", s.ExitCode, s.Reason, s.FinishedAt)
	}
	restarted := d.mustCrictl("create", pod, d.containerJSON("failing", 1, imageBusybox, []string{"sh", "-c", "echo again; sleep 3600"}, ""), d.podJSON("life", ""))
	d.mustCrictl("start", restarted)
	waitFor(t, time.Minute, "restarted container output", func() (bool, string) {
		out, err := d.crictl("logs", restarted)
		return err == nil && strings.Contains(out, "again"), out
	})
	d.mustCrictl("rm", failing)

	// Exec: output, exit code, the container's view of the pod.
	if got := d.mustCrictl("exec", ticker, "cat", "/etc/hostname"); got != "host-life" {
		t.Errorf("hostname in container %q", got)
	}
	if _, err := d.crictl("exec", ticker, "sh", "-c", "exit 7"); err == nil || !strings.Contains(err.Error(), "exit code 7") {
		t.Errorf("exec exit code: %v", err)
	}

	// Stats report CPU and memory from the guest.
	statsOut := d.mustCrictl("stats", "-o", "json", "--id", ticker)
	var stats struct {
		Stats []struct {
			CPU    struct{ UsageCoreNanoSeconds struct{ Value string } } `json:"cpu"`
			Memory struct{ WorkingSetBytes struct{ Value string } }      `json:"memory"`
		} `json:"stats"`
	}
	if err := json.Unmarshal([]byte(statsOut), &stats); err != nil || len(stats.Stats) != 1 {
		t.Fatalf("stats %v: %s", err, statsOut)
	}
	if s := stats.Stats[0]; s.CPU.UsageCoreNanoSeconds.Value == "" || s.CPU.UsageCoreNanoSeconds.Value == "0" || s.Memory.WorkingSetBytes.Value == "" || s.Memory.WorkingSetBytes.Value == "0" {
		t.Errorf("stats lack CPU or memory: %s", statsOut)
	}
	if out := d.mustCrictl("statsp", "-o", "json", "--id", pod); !strings.Contains(out, "workingSetBytes") {
		t.Errorf("pod stats lack memory: %s", out)
	}

	// Resources are applied to the container's cgroup in the guest.
	d.mustCrictl("update", "--memory", "104857600", "--cpu-quota", "50000", "--cpu-period", "100000", ticker)
	if got := d.mustCrictl("exec", ticker, "cat", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/cpu.max"); got != "104857600\n50000 100000" {
		t.Errorf("cgroup limits after update: %q", got)
	}

	// Log rotation: the file is moved away, ReopenContainerLog starts a
	// new one at the log path, and lines keep arriving there.
	rotated := st.LogPath + ".1"
	if err := os.Rename(st.LogPath, rotated); err != nil {
		t.Fatal(err)
	}
	if _, err := d.rt.ReopenContainerLog(ctxFor(t, time.Minute), &runtime.ReopenContainerLogRequest{ContainerId: ticker}); err != nil {
		t.Fatalf("ReopenContainerLog: %v", err)
	}
	waitFor(t, time.Minute, "lines in the reopened log", func() (bool, string) {
		b, _ := os.ReadFile(st.LogPath)
		return strings.Contains(string(b), " stdout F tick "), string(b)
	})

	// Stop and remove.
	d.mustCrictl("stop", "--timeout", "5", ticker)
	if s := d.containerStatus(t, ticker); s.State != runtime.ContainerState_CONTAINER_EXITED {
		t.Errorf("stopped container state %s", s.State)
	}
	d.mustCrictl("stopp", pod)
	d.mustCrictl("rmp", pod)
	if out := d.mustCrictl("ps", "-a", "-q"); out != "" {
		t.Errorf("containers left after rmp: %q", out)
	}
	d.mustCrictl("rmi", imageBusybox)
}

// checkCRILogFormat checks every line of a CRI log file and that a long
// line was split into partial records.
func checkCRILogFormat(t *testing.T, raw string) {
	t.Helper()
	partial := 0
	for _, line := range strings.Split(strings.TrimSuffix(raw, "\n"), "\n") {
		f := strings.SplitN(line, " ", 4)
		if len(f) < 3 {
			t.Errorf("malformed log line %.80q", line)
			continue
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
			t.Errorf("log line timestamp %q: %v", f[0], err)
		}
		if f[1] != "stdout" && f[1] != "stderr" {
			t.Errorf("log line stream %q", f[1])
		}
		switch f[2] {
		case "P":
			partial++
			if len(f) == 4 && len(f[3]) > 16<<10 {
				t.Errorf("partial line of %d bytes exceeds 16 KiB", len(f[3]))
			}
		case "F":
		default:
			t.Errorf("log line tag %q", f[2])
		}
	}
	if partial < 2 {
		t.Errorf("a 40000-byte line gave %d partial records, want at least 2", partial)
	}
	if !strings.Contains(raw, " stderr F warn\n") {
		t.Errorf("stderr line missing from the log file")
	}
}

// TestSharedPIDNamespace runs two containers in a pod that shares its PID
// namespace: they see each other's processes, neither is PID 1 (a holder
// process in the guest is), and one exiting leaves the other running.
func TestSharedPIDNamespace(t *testing.T) {
	d := startDaemon(t)
	d.mustCrictl("pull", imageBusybox)
	podCfg := d.podJSON("sharedpid", "")
	pod := d.mustCrictl("runp", podCfg)
	podPID := `, "security_context": {"namespace_options": {"pid": 0}}`
	sleeper := d.mustCrictl("create", pod, d.containerJSON("sleeper", 0, imageBusybox, []string{"sleep", "3600"}, podPID), podCfg)
	d.mustCrictl("start", sleeper)
	short := d.mustCrictl("create", pod, d.containerJSON("short", 0, imageBusybox, []string{"sh", "-c", "sleep 8"}, podPID), podCfg)
	d.mustCrictl("start", short)

	if got := d.mustCrictl("exec", sleeper, "cat", "/proc/1/cmdline"); !strings.HasPrefix(got, "podvisor-pause") {
		t.Errorf("PID 1 of the pod's namespace: %q, want the holder", got)
	}
	ps := d.mustCrictl("exec", sleeper, "sh", "-c", `for p in /proc/[0-9]*; do tr '\0' ' ' < $p/cmdline; echo; done`)
	if !strings.Contains(ps, "sleep 3600") || !strings.Contains(ps, "sleep 8") {
		t.Errorf("containers do not see each other's processes:\n%s", ps)
	}
	waitFor(t, time.Minute, "the short container to exit", func() (bool, string) {
		s := d.containerStatus(t, short)
		return s.State == runtime.ContainerState_CONTAINER_EXITED, s.State.String()
	})
	if s := d.containerStatus(t, sleeper); s.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("the other container after one exited: %s", s.State)
	}
	if got := d.mustCrictl("exec", sleeper, "echo", "alive"); got != "alive" {
		t.Errorf("exec after the other container exited: %q", got)
	}
}

// TestOOMKilledReason runs a container past its memory limit: it ends
// with exit code 137 and reason OOMKilled, as kubelet expects.
func TestOOMKilledReason(t *testing.T) {
	d := startDaemon(t)
	d.mustCrictl("pull", imageBusybox)
	podCfg := d.podJSON("oom", "")
	pod := d.mustCrictl("runp", podCfg)
	ctrCfg := d.writeJSON("ctr-oom.json", `{
  "metadata": {"name": "hog"},
  "image": {"image": "`+imageBusybox+`"},
  "args": ["tail", "/dev/zero"],
  "linux": {"resources": {"memory_limit_in_bytes": 33554432}}
}`)
	ctr := d.mustCrictl("create", pod, ctrCfg, podCfg)
	d.mustCrictl("start", ctr)
	waitFor(t, 2*time.Minute, "the container to be OOM-killed", func() (bool, string) {
		s := d.containerStatus(t, ctr)
		return s.State == runtime.ContainerState_CONTAINER_EXITED, s.State.String()
	})
	if s := d.containerStatus(t, ctr); s.ExitCode != 137 || s.Reason != "OOMKilled" {
		t.Errorf("OOM-killed container: exit code %d, reason %q", s.ExitCode, s.Reason)
	}
}
