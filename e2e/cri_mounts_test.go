//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podvisor/podvisor/e2e/hoststate"
)

// TestPodMountsStayOffTheHost runs a pod with a recursive read-only volume
// whose host directory has a tmpfs submount. No mount of the pod shows in
// the host's mount table (only the pins of its network and mount
// namespaces), so the host can unmount and remove its submount while the
// pod runs, as with runc. A restarted daemon still adds and removes
// container mounts of the pod, and nothing is left once it is removed.
func TestPodMountsStayOffTheHost(t *testing.T) {
	d := startDaemon(t)
	d.mustCrictl("pull", imageBusybox)
	vol := filepath.Join(d.dir, "rro-volume")
	sub := filepath.Join(vol, "sub")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("none", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(sub, unix.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(sub, "file"), []byte("on-tmpfs"), 0o644); err != nil {
		t.Fatal(err)
	}

	podCfg := d.podJSON("mounts", "")
	pod := d.mustCrictl("runp", podCfg)
	ctr := d.mustCrictl("create", pod, d.containerJSON("rro", 0, imageBusybox, []string{"sleep", "3600"},
		`, "mounts": [{"host_path": "`+vol+`", "container_path": "/data", "readonly": true, "recursive_read_only": true}]`), podCfg)
	d.mustCrictl("start", ctr)
	if got := d.mustCrictl("exec", ctr, "cat", "/data/sub/file"); got != "on-tmpfs" {
		t.Errorf("submount through the volume: %q", got)
	}
	if out, err := d.crictl("exec", ctr, "touch", "/data/sub/written"); err == nil {
		t.Errorf("wrote below a recursive read-only volume: %s", out)
	}

	// Only the namespace pins are below the daemon's directories.
	allowed := []string{
		filepath.Join(d.state, "network", "netns", pod),
		filepath.Join(d.state+"-vms", pod[:16], "mntns"),
	}
	checkHostMounts := func(when string) {
		t.Helper()
		for _, dir := range []string{d.root, d.state, d.state + "-vms"} {
			for _, m := range hoststate.MountsUnder(dir) {
				if !slices.Contains(allowed, m) {
					t.Errorf("%s: the host's mount table has %s", when, m)
				}
			}
		}
	}
	checkHostMounts("pod running")

	// umount -l and rmdir, as critest does while the pod still runs.
	if err := unix.Unmount(sub, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(sub); err != nil {
		t.Fatalf("remove the volume's submount on the host while the pod runs: %v", err)
	}
	if _, err := d.crictl("exec", ctr, "ls", "/data"); err != nil {
		t.Errorf("container after the host removed the submount: %v", err)
	}

	// A new daemon finds the pod's mount namespace again.
	d.restart()
	rw := filepath.Join(d.dir, "rw-volume")
	if err := os.Mkdir(rw, 0o755); err != nil {
		t.Fatal(err)
	}
	writer := d.mustCrictl("create", pod, d.containerJSON("writer", 0, imageBusybox, []string{"sh", "-c", "echo hi > /rw/out"},
		`, "mounts": [{"host_path": "`+rw+`", "container_path": "/rw"}]`), podCfg)
	d.mustCrictl("start", writer)
	waitFor(t, 2*time.Minute, "the writer's file on the host", func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(rw, "out"))
		return err == nil && strings.TrimSpace(string(b)) == "hi", string(b)
	})
	checkHostMounts("after a restart")
	d.mustCrictl("rm", "-f", writer)
	d.mustCrictl("stop", "--timeout", "5", ctr)
	d.mustCrictl("rm", ctr)
	d.mustCrictl("stopp", pod)
	d.mustCrictl("rmp", pod)
	if m := hoststate.MountsUnder(d.dir); len(m) != 0 {
		t.Errorf("mounts left after the pod was removed: %v", m)
	}
	if b, err := os.ReadFile(filepath.Join(rw, "out")); err != nil || strings.TrimSpace(string(b)) != "hi" {
		t.Errorf("volume data after the pod was removed: %q, %v", b, err)
	}
}
