package reaper

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// startOrphan leaves behind a process running script (no single quotes)
// whose parent has exited, the way runc create leaves the container's init
// behind: a subshell starts it in the background and exits, so it is
// re-parented to this process. It returns the orphan's PID once the
// starting shell has exited; the orphan may have exited already.
func startOrphan(t *testing.T, script string) int {
	t.Helper()
	pidFile := filepath.Join(t.TempDir(), "pid")
	inner := "echo $$ >" + pidFile + "; " + script
	outer := "( /bin/sh -c '" + inner + "' </dev/null >/dev/null 2>&1 & ); while [ ! -s " + pidFile + " ]; do :; done"
	_, ch, err := testReaper.Start(forkExec(t, "/bin/sh", "-c", outer))
	if err != nil {
		t.Fatal(err)
	}
	if e := waitExit(t, ch); e.ExitCode() != 0 {
		t.Fatalf("sh exited %d", e.ExitCode())
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestAdoptRace adopts orphans that exit at once (usually reaped, and held,
// before Adopt) and orphans still running (registered as waiters), many
// times, and checks every exit status arrives.
func TestAdoptRace(t *testing.T) {
	for i := 0; i < 50; i++ {
		for _, tc := range []struct {
			script string
			code   int
		}{
			{"exit 7", 7},
			{"sleep 0.05; exit 9", 9},
			{"kill -9 $$", 137},
		} {
			w := testReaper.OpenWindow()
			pid := startOrphan(t, tc.script)
			ch, err := w.Adopt(pid)
			if err != nil {
				w.Close()
				t.Fatalf("adopt %d (%q): %v", pid, tc.script, err)
			}
			e := waitExit(t, ch)
			w.Close()
			if e.ExitCode() != tc.code {
				t.Fatalf("%q: exit code %d, want %d", tc.script, e.ExitCode(), tc.code)
			}
		}
	}
}

func TestAdoptRefusals(t *testing.T) {
	w := testReaper.OpenWindow()
	defer w.Close()
	if _, err := w.Adopt(os.Getppid()); !errors.Is(err, ErrNotChild) {
		t.Errorf("adopting the parent: %v, want ErrNotChild", err)
	}
	if _, err := w.Adopt(0); !errors.Is(err, ErrNotChild) {
		t.Errorf("adopting pid 0: %v, want ErrNotChild", err)
	}
	pid, ch, err := testReaper.Start(forkExec(t, "/bin/sleep", "10"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Adopt(pid); !errors.Is(err, ErrRegistered) {
		t.Errorf("adopting a registered child: %v, want ErrRegistered", err)
	}
	testReaper.Kill(pid, syscall.SIGKILL)
	waitExit(t, ch)
	w.Close()
	if _, err := w.Adopt(pid); !errors.Is(err, ErrWindowClosed) {
		t.Errorf("adopting after Close: %v, want ErrWindowClosed", err)
	}
}

// TestHeldDroppedWhenWindowsClose checks that statuses are held only while
// a window is open.
func TestHeldDroppedWhenWindowsClose(t *testing.T) {
	w := testReaper.OpenWindow()
	pid := startOrphan(t, "exit 0")
	// Adopt first so the orphan is known to have been collected.
	ch, err := w.Adopt(pid)
	if err != nil {
		t.Fatal(err)
	}
	waitExit(t, ch)
	w.Close()
	testReaper.mu.Lock()
	n := len(testReaper.held)
	testReaper.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d statuses still held with no window open", n)
	}
}
