//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podvisor/podvisor/podvm"
	"github.com/podvisor/podvisor/podvm/agent/agentpb"
	"github.com/podvisor/podvisor/podvm/guest"
)

// run starts a process and collects its output and exit status.
func run(t *testing.T, vm *podvm.VM, spec podvm.ProcessSpec, stdin string) (string, string, podvm.ExitStatus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spec.Stdout, spec.Stderr = true, !spec.Terminal
	spec.Stdin = stdin != ""
	p, err := vm.Start(ctx, spec)
	if err != nil {
		t.Fatalf("start %v: %v", spec.Args, err)
	}
	if p.Stdin != nil {
		go func() {
			io.WriteString(p.Stdin, stdin)
			p.Stdin.Close()
		}()
	}
	outc, errc := make(chan string, 1), make(chan string, 1)
	go func() { b, _ := io.ReadAll(p.Stdout); outc <- string(b) }()
	go func() {
		if p.Stderr == nil {
			errc <- ""
			return
		}
		b, _ := io.ReadAll(p.Stderr)
		errc <- string(b)
	}()
	st, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("wait %v: %v", spec.Args, err)
	}
	out, errOut := <-outc, <-errc
	if err := p.Remove(ctx); err != nil {
		t.Errorf("remove %s: %v", spec.ID, err)
	}
	return out, errOut, st
}

// TestProcesses runs processes from the VM's virtio-fs share and checks
// stdio, exit codes, signals, stdin and a terminal with resize.
func TestProcesses(t *testing.T) {
	e := newEnv(t, "")
	vm := e.boot("procs")

	t.Run("stdout stderr and exit code", func(t *testing.T) {
		out, errOut, st := run(t, vm, podvm.ProcessSpec{ID: "p1", Args: bb("sh", "-c", "echo to-out; echo to-err >&2; exit 7")}, "")
		if out != "to-out\n" || errOut != "to-err\n" || st.Code != 7 || st.Signal != 0 {
			t.Fatalf("got out=%q err=%q status=%+v", out, errOut, st)
		}
	})

	t.Run("stdin round trip", func(t *testing.T) {
		in := strings.Repeat("line of input\n", 5000) // larger than any pipe buffer
		out, _, st := run(t, vm, podvm.ProcessSpec{ID: "p2", Args: bb("cat")}, in)
		if out != in || st.Code != 0 {
			t.Fatalf("cat returned %d bytes (want %d), status %+v", len(out), len(in), st)
		}
	})

	t.Run("environment cwd and user", func(t *testing.T) {
		out, _, st := run(t, vm, podvm.ProcessSpec{
			ID: "p3", Args: bb("sh", "-c", "echo $GREETING; pwd; id -u; id -g"),
			Env: []string{"GREETING=hi there"}, Cwd: "/tmp", UID: 1234, GID: 4321,
		}, "")
		if out != "hi there\n/tmp\n1234\n4321\n" || st.Code != 0 {
			t.Fatalf("got %q, status %+v", out, st)
		}
	})

	t.Run("signal a long-running process", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p, err := vm.Start(ctx, podvm.ProcessSpec{ID: "sleeper", Args: bb("sleep", "1000")})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Signal(ctx, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		st, err := p.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Signal != syscall.SIGTERM || st.Code != 128+int(syscall.SIGTERM) {
			t.Fatalf("status %+v, want killed by SIGTERM", st)
		}
		p.Remove(ctx)
	})

	t.Run("terminal with resize", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		p, err := vm.Start(ctx, podvm.ProcessSpec{
			ID: "tty", Terminal: true, Rows: 24, Cols: 80, Stdin: true, Stdout: true,
			Args: bb("sh", "-c", "test -t 0 && echo is-a-tty; stty size; read go; stty size"),
		})
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(p.Stdout)
		expectLine(t, r, "is-a-tty")
		expectLine(t, r, "24 80")
		if err := p.Resize(ctx, 40, 132); err != nil {
			t.Fatal(err)
		}
		io.WriteString(p.Stdin, "go\r")
		expectLine(t, r, "40 132")
		st, err := p.Wait(ctx)
		if err != nil || st.Code != 0 {
			t.Fatalf("status %+v, %v", st, err)
		}
		p.Remove(ctx)
	})

	t.Run("agent rejects bad requests", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := vm.Agent().StartProcess(ctx, &agentpb.StartProcessRequest{Id: "../bad", Args: []string{"/x"}})
		if err == nil || !strings.Contains(err.Error(), "id") {
			t.Fatalf("bad id: %v", err)
		}
		_, err = vm.Agent().StartProcess(ctx, &agentpb.StartProcessRequest{Id: "ok", Args: nil})
		if err == nil || !strings.Contains(err.Error(), "args") {
			t.Fatalf("empty args: %v", err)
		}
		info, err := vm.Agent().GuestInfo(ctx, &agentpb.Empty{})
		if err != nil || info.KernelRelease == "" || info.MemoryTotalBytes == 0 {
			t.Fatalf("guest info %+v, %v", info, err)
		}
	})
}

// expectLine reads lines until one equals want (terminal echo and prompts
// may come first).
func expectLine(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	for i := 0; i < 20; i++ {
		line, err := r.ReadString('\n')
		if strings.TrimRight(line, "\r\n") == want {
			return
		}
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
	}
	t.Fatalf("did not see %q", want)
}

// TestVMMKilledMidSession kills the VMM under a running process: the error
// must surface promptly and Stop must leave nothing behind.
func TestVMMKilledMidSession(t *testing.T) {
	e := newEnv(t, "")
	vm := e.boot("killed")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := vm.Start(ctx, podvm.ProcessSpec{ID: "long", Args: bb("sleep", "1000")})
	if err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() {
		_, err := p.Wait(ctx)
		waitErr <- err
	}()
	pid := vm.VMM().State().PID
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waitErr:
		if err == nil {
			t.Fatal("Wait succeeded on a dead VM")
		}
		t.Logf("Wait failed %v after the kill: %v", time.Since(killed), err)
	case <-time.After(20 * time.Second):
		t.Fatal("Wait did not return within 20s of the VMM dying")
	}
	select {
	case <-vm.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("VM.Done not closed")
	}
	if !errors.Is(vm.Err(), podvm.ErrGone) {
		t.Fatalf("VM.Err = %v, want ErrGone", vm.Err())
	}
	if err := vm.Stop(ctx); err != nil {
		t.Fatalf("stop after kill: %v", err)
	}
}

// TestBootRefusesTamperedGuest boots from a guest image whose kernel does
// not match its manifest: the boot fails naming the file, before any
// process or directory exists.
func TestBootRefusesTamperedGuest(t *testing.T) {
	tampered := t.TempDir()
	for _, f := range []string{"vmlinuz", "initramfs.img", "manifest.json"} {
		if err := copyFile(filepath.Join(guestDir, f), filepath.Join(tampered, f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	k, err := os.OpenFile(filepath.Join(tampered, "vmlinuz"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	k.ReadAt(b, 4096)
	b[0] ^= 0xff
	k.WriteAt(b, 4096)
	k.Close()

	e := newEnv(t, tampered)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = e.mgr.Boot(ctx, podvm.Spec{ID: "tampered", VCPUs: 1, MemoryMiB: 256, SharedDir: e.sharedDir()})
	if err == nil {
		t.Fatal("boot of a tampered kernel succeeded")
	}
	if !errors.Is(err, guest.ErrDigestMismatch) || !strings.Contains(err.Error(), "vmlinuz") {
		t.Fatalf("error %v does not report the kernel digest mismatch", err)
	}
}

// TestBootFailureAfterLaunchLeavesNothing fails a boot after virtiofsd and
// the VMM are running (the agent cannot answer within the boot timeout):
// the rollback must stop both and remove the VM's directory.
func TestBootFailureAfterLaunchLeavesNothing(t *testing.T) {
	e := newEnvWith(t, "", func(c *podvm.Config) { c.BootTimeout = 1500 * time.Millisecond })
	vm, err := e.mgr.Boot(context.Background(), podvm.Spec{ID: "too-slow", VCPUs: 1, MemoryMiB: 256, SharedDir: e.sharedDir()})
	if err == nil {
		vm.Stop(context.Background())
		t.Skip("this host boots a pod VM in under 1.5 s (KVM): the timeout cannot interrupt it")
	}
	if !errors.Is(err, podvm.ErrBoot) || !(strings.Contains(err.Error(), "connect agent") || strings.Contains(err.Error(), "launch VMM")) {
		t.Fatalf("error %v is not a failure after the VMM was started", err)
	}
	// newEnv's cleanup checks that no directory or process is left.
}
