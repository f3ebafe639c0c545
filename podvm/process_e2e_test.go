//go:build e2e

package podvm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podvisor/podvisor/hypervisor/qemu"
)

// hostBusybox is busybox-static on the host (make deps installs it); the
// guest image has no shell, so tests that need one share this one.
const hostBusybox = "/bin/busybox"

// bootWithBusybox boots a real VM whose shared directory holds busybox at
// GuestSharedDir/busybox, with sh and sleep in GuestSharedDir/bin. owner
// returns the handle the cleanup stops: the test points it at a
// re-attached handle once it has one.
func bootWithBusybox(t *testing.T, id string, owner **VM) *VM {
	t.Helper()
	guestDir := os.Getenv("PODVISOR_GUEST_DIR")
	if guestDir == "" || os.Geteuid() != 0 {
		t.Skip("needs root and PODVISOR_GUEST_DIR (run through make e2e)")
	}
	if _, err := os.Stat(hostBusybox); err != nil {
		t.Skipf("needs busybox-static: %v", err)
	}
	u, err := user.Lookup("podvisor-vmm")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	stateDir, err := os.MkdirTemp("/run", "podvisor-podvm-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(stateDir, 0o711)
	t.Cleanup(func() { os.RemoveAll(stateDir) })
	shared, err := os.MkdirTemp("/run", "podvisor-podvm-shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shared) })
	os.Chmod(shared, 0o755)
	bb, err := os.ReadFile(hostBusybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(shared, "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(shared, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "sleep"} {
		if err := os.Symlink("../busybox", filepath.Join(shared, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}

	m, err := NewManager(Config{
		StateDir: stateDir, GuestDir: guestDir, Driver: qemu.New(qemu.Options{}),
		VMMUser: uint32(uid), VMMGroup: uint32(gid), BootTimeout: 3 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	vm, err := m.Boot(ctx, Spec{ID: id, VCPUs: 1, MemoryMiB: 256, SharedDir: shared})
	if err != nil {
		t.Fatal(err)
	}
	*owner = vm
	t.Cleanup(func() {
		if err := (*owner).Stop(context.Background()); err != nil {
			t.Error(err)
		}
		if ents, _ := os.ReadDir(stateDir); len(ents) != 0 {
			t.Errorf("state left behind: %v", ents)
		}
	})
	return vm
}

// rawCollector keeps every byte read from r until r fails.
type rawCollector struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	err  error
	done chan struct{}
}

func collectRaw(r io.Reader) *rawCollector {
	c := &rawCollector{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			c.mu.Lock()
			c.buf.Write(b[:n])
			if err != nil {
				c.err = err
			}
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return c
}

func (c *rawCollector) lines() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Count(c.buf.Bytes(), []byte("\n"))
}

func (c *rawCollector) wait(t *testing.T, d time.Duration) (string, error) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(d):
		t.Fatalf("stream did not end within %v; %d lines so far", d, c.lines())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String(), c.err
}

// readLines reads r until at least n lines arrived, and returns all it read,
// which may end within a line.
func readLines(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	var buf bytes.Buffer
	b := make([]byte, 4096)
	for bytes.Count(buf.Bytes(), []byte("\n")) < n {
		m, err := r.Read(b)
		buf.Write(b[:m])
		if err != nil {
			t.Fatalf("read after %d bytes: %v", buf.Len(), err)
		}
	}
	return buf.String()
}

// checkSequence checks that out is exactly "<prefix> 0" to "<prefix> n-1",
// one per line: nothing missing, repeated or out of order.
func checkSequence(t *testing.T, name, out, prefix string, n int) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for i, l := range lines {
		if want := fmt.Sprintf("%s %d", prefix, i); l != want {
			t.Fatalf("%s line %d is %q, want %q (%d lines; output around it: %q)",
				name, i, l, want, len(lines), lines[max(0, i-2):min(len(lines), i+3)])
		}
	}
	if len(lines) != n || !strings.HasSuffix(out, "\n") {
		t.Fatalf("%s has %d lines, want %d", name, len(lines), n)
	}
}

// TestProcessOutputSurvivesDaemonRestart runs a process that prints a
// numbered line on stdout and stderr every 50 ms, drops every host-side
// handle halfway, as a daemon exit does, and re-attaches through a new
// Manager after a second of output with no host: Process gives the
// streams back and, read to EOF, they hold every line exactly once. A
// second process printing as fast as it can, whose output the host stops
// reading a while before it goes, shows that what the host had received
// but not read when it died is not lost either. A third, reading stdin,
// keeps it open across the restart and reads what the new host sends,
// until that host closes it.
func TestProcessOutputSurvivesDaemonRestart(t *testing.T) {
	var owner *VM
	vm := bootWithBusybox(t, "relog", &owner)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	const n = 100
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); sleep 0.05; done`, n)
	p, err := vm.Start(ctx, ProcessSpec{
		ID:     "counter",
		Args:   []string{GuestSharedDir + "/bin/sh", "-c", script},
		Env:    []string{"PATH=" + GuestSharedDir + "/bin"},
		Stdout: true, Stderr: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	const floodLines = 30000
	flood, err := vm.Start(ctx, ProcessSpec{
		ID:     "flood",
		Args:   []string{GuestSharedDir + "/bin/sh", "-c", fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "flood $i"; i=$((i+1)); done`, floodLines)},
		Stdout: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	echo, err := vm.Start(ctx, ProcessSpec{
		ID:    "echo",
		Args:  []string{GuestSharedDir + "/bin/sh", "-c", `while read l; do echo "got $l"; done; echo eof`},
		Stdin: true, Stdout: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	echoOut1 := collectRaw(echo.Stdout)
	if _, err := echo.Stdin.Write([]byte("a\n")); err != nil {
		t.Fatal(err)
	}
	out1, err1 := collectRaw(p.Stdout), collectRaw(p.Stderr)
	deadline := time.Now().Add(2 * time.Minute)
	floodFirst := readLines(t, flood.Stdout, 1000)
	for out1.lines() < 20 || echoOut1.lines() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d lines after 2 minutes", out1.lines())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The daemon goes away, with flood output it received but did not
	// read.
	time.Sleep(500 * time.Millisecond)
	if err := vm.Release(); err != nil {
		t.Fatal(err)
	}
	firstOut, _ := out1.wait(t, time.Minute)
	firstErr, _ := err1.wait(t, time.Minute)
	echoFirst, _ := echoOut1.wait(t, time.Minute)
	time.Sleep(time.Second)

	m2, err := NewManager(vm.cfg)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := m2.Reattach(ctx, "relog")
	if err != nil {
		t.Fatalf("reattach: %v", err)
	}
	owner = v2
	p2, err := v2.Process(ctx, "counter")
	if err != nil {
		t.Fatalf("Process after re-attach: %v", err)
	}
	if p2.Stdin != nil || p2.Stdout == nil || p2.Stderr == nil {
		t.Fatalf("re-attached streams: stdin %v stdout %v stderr %v", p2.Stdin, p2.Stdout, p2.Stderr)
	}
	out2, err2 := collectRaw(p2.Stdout), collectRaw(p2.Stderr)
	st, err := p2.Wait(ctx)
	if err != nil || st.Code != 0 {
		t.Fatalf("wait: %+v, %v", st, err)
	}
	restOut, errOut := out2.wait(t, 2*time.Minute)
	restErr, errErr := err2.wait(t, 2*time.Minute)
	if errOut != io.EOF || errErr != io.EOF {
		t.Errorf("streams ended with %v and %v, want EOF", errOut, errErr)
	}
	t.Logf("stdout: %d lines before the restart, %d after; stderr: %d and %d",
		strings.Count(firstOut, "\n"), strings.Count(restOut, "\n"),
		strings.Count(firstErr, "\n"), strings.Count(restErr, "\n"))
	checkSequence(t, "stdout", firstOut+restOut, "out", n)
	checkSequence(t, "stderr", firstErr+restErr, "err", n)
	if err := p2.Remove(ctx); err != nil {
		t.Fatal(err)
	}

	flood2, err := v2.Process(ctx, "flood")
	if err != nil {
		t.Fatalf("Process after re-attach: %v", err)
	}
	floodRest, _ := collectRaw(flood2.Stdout).wait(t, 3*time.Minute)
	t.Logf("flood: %d lines before the restart, %d after", strings.Count(floodFirst, "\n"), strings.Count(floodRest, "\n"))
	checkSequence(t, "flood", floodFirst+floodRest, "flood", floodLines)
	if st, err := flood2.Wait(ctx); err != nil || st.Code != 0 {
		t.Fatalf("wait: %+v, %v", st, err)
	}
	if err := flood2.Remove(ctx); err != nil {
		t.Fatal(err)
	}

	echo2, err := v2.Process(ctx, "echo")
	if err != nil {
		t.Fatalf("Process after re-attach: %v", err)
	}
	if echo2.Stdin == nil || echo2.Stdout == nil || echo2.Stderr != nil {
		t.Fatalf("re-attached streams: stdin %v stdout %v stderr %v", echo2.Stdin, echo2.Stdout, echo2.Stderr)
	}
	echoOut2 := collectRaw(echo2.Stdout)
	if _, err := echo2.Stdin.Write([]byte("b\n")); err != nil {
		t.Fatal(err)
	}
	if err := echo2.Stdin.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := echo2.Wait(ctx); err != nil || st.Code != 0 {
		t.Fatalf("wait: %+v, %v", st, err)
	}
	echoRest, _ := echoOut2.wait(t, time.Minute)
	if got, want := echoFirst+echoRest, "got a\ngot b\neof\n"; got != want {
		t.Errorf("stdin across the restart: output %q, want %q", got, want)
	}
	if err := echo2.Remove(ctx); err != nil {
		t.Fatal(err)
	}
}
