package reaper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// testReaper is the test binary's only reaper: two would steal each other's
// statuses.
var testReaper *Reaper

func TestMain(m *testing.M) {
	r, err := New()
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go r.Run(ctx)
	testReaper = r
	code := m.Run()
	cancel()
	os.Exit(code)
}

func forkExec(t *testing.T, argv ...string) func() (int, error) {
	t.Helper()
	return func() (int, error) {
		return syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{Env: []string{}})
	}
}

func waitExit(t *testing.T, ch <-chan Exit) Exit {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no exit status within 10s")
		return Exit{}
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name     string
		script   string
		wantCode int
		wantSig  syscall.Signal
	}{
		{"zero", "exit 0", 0, 0},
		{"nonzero", "exit 3", 3, 0},
		{"killed", "kill -9 $$", 137, syscall.SIGKILL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ch, err := testReaper.Start(forkExec(t, "/bin/sh", "-c", tt.script))
			if err != nil {
				t.Fatal(err)
			}
			e := waitExit(t, ch)
			if e.ExitCode() != tt.wantCode || e.Signal() != tt.wantSig {
				t.Errorf("exit code %d signal %v, want %d %v", e.ExitCode(), e.Signal(), tt.wantCode, tt.wantSig)
			}
		})
	}
}

func TestKill(t *testing.T) {
	pid, ch, err := testReaper.Start(forkExec(t, "/bin/sleep", "100"))
	if err != nil {
		t.Fatal(err)
	}
	if err := testReaper.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if e := waitExit(t, ch); e.Signal() != syscall.SIGTERM {
		t.Errorf("signal %v, want SIGTERM", e.Signal())
	}
	if err := testReaper.Kill(pid, syscall.SIGTERM); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Kill after exit = %v, want ErrNotRunning", err)
	}
	if err := testReaper.Kill(os.Getpid(), 0); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Kill of an unregistered PID = %v, want ErrNotRunning", err)
	}
}

func TestStartCmd(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "exit 7")
	ch, err := testReaper.StartCmd(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if e := waitExit(t, ch); e.ExitCode() != 7 {
		t.Errorf("exit code %d, want 7", e.ExitCode())
	}
}

func TestStartError(t *testing.T) {
	_, _, err := testReaper.Start(forkExec(t, "/nonexistent/binary"))
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("err = %v, want ENOENT", err)
	}
}

// TestOrphansReaped checks that a grandchild left behind by a child that
// exited is re-parented to the test process (the subreaper) and reaped.
func TestOrphansReaped(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, ch, err := testReaper.Start(func() (int, error) {
		defer w.Close()
		return syscall.ForkExec("/bin/sh", []string{"sh", "-c", "sleep 0.2 & echo $!"},
			&syscall.ProcAttr{Env: []string{}, Files: []uintptr{0, w.Fd(), 2}})
	})
	if err != nil {
		t.Fatal(err)
	}
	waitExit(t, ch)
	buf := make([]byte, 32)
	n, _ := r.Read(buf)
	orphan, err := strconv.Atoi(string(buf[:n-1]))
	if err != nil {
		t.Fatalf("orphan pid %q: %v", buf[:n], err)
	}
	if ppid := parentOf(orphan); ppid != os.Getpid() {
		t.Errorf("orphan %d has parent %d, want the test process %d", orphan, ppid, os.Getpid())
	}
	deadline := time.Now().Add(5 * time.Second)
	for parentOf(orphan) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("orphan %d still exists (zombie?)", orphan)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// parentOf returns pid's parent PID, or 0 once pid is gone.
func parentOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name may contain spaces; fields after ") " are fixed.
	s := string(b)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ')' {
			var state byte
			var ppid int
			if _, err := fmt.Sscanf(s[i+2:], "%c %d", &state, &ppid); err != nil {
				return 0
			}
			return ppid
		}
	}
	return 0
}
