package vmmproc

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStartInOwnSessionAndAttach(t *testing.T) {
	log, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	p, err := Start(Spec{Path: "/bin/sh", Args: []string{"-c", "pwd; exec sleep 60"}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()

	sid, err := syscall.Getpgid(p.PID)
	if err != nil || sid != p.PID {
		t.Fatalf("process group %d (%v), want its own %d", sid, err, p.PID)
	}
	if p.StartTime == 0 {
		t.Fatal("no start time recorded")
	}

	// A second handle, as a restarted daemon would build it.
	q, err := Attach(p.PID, p.StartTime)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Attach(p.PID, p.StartTime+1); err == nil {
		t.Fatal("attached to a PID whose start time differs (a recycled PID)")
	}

	for i := 0; i < 100; i++ {
		if b, _ := os.ReadFile(log.Name()); len(b) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.Kill()
	select {
	case <-q.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("attached handle did not notice the exit")
	}
	if _, err := Attach(p.PID, p.StartTime); err == nil {
		t.Fatal("attached to an exited process")
	}
	if err := q.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signalling an exited process: %v", err)
	}
	out, _ := os.ReadFile(log.Name())
	if strings.TrimSpace(string(out)) != "/" {
		t.Fatalf("child working directory %q, want /", out)
	}
}

func TestStartFailure(t *testing.T) {
	if _, err := Start(Spec{Path: "/nonexistent/vmm"}); err == nil {
		t.Fatal("start of a missing binary succeeded")
	}
	if _, err := Start(Spec{Path: "/bin/true", NetNSPath: "/nonexistent/netns"}); err == nil {
		t.Fatal("start in a missing netns succeeded")
	}
}

func TestStartTime(t *testing.T) {
	st, err := StartTime(os.Getpid())
	if err != nil || st == 0 {
		t.Fatalf("StartTime(self) = %d, %v", st, err)
	}
	if _, err := StartTime(1 << 30); err == nil {
		t.Fatal("StartTime of a missing PID succeeded")
	}
}

func TestReleaseStopsWatching(t *testing.T) {
	p, err := Start(Spec{Path: "/bin/sleep", Args: []string{"60"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	q, err := Attach(p.PID, p.StartTime)
	if err != nil {
		t.Fatal(err)
	}
	q.Release()
	select {
	case <-q.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("released handle still watching")
	}
	if _, err := StartTime(p.PID); err != nil {
		t.Fatal("Release stopped the process")
	}
	q.Release() // idempotent
	p.Release() // no-op for a child
}
