//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// ptySession is crictl running on a pseudo-terminal, as an operator's
// shell would run it.
type ptySession struct {
	cmd    *exec.Cmd
	master *os.File
	mu     sync.Mutex
	out    bytes.Buffer
	done   chan struct{}
}

func (d *daemon) crictlPTY(t *testing.T, args ...string) *ptySession {
	t.Helper()
	bin := os.Getenv("PODVISOR_CRICTL")
	if bin == "" {
		bin = "crictl"
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "CRI_CONFIG_FILE="+d.dir+"/crictl.yaml")
	master, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	s := &ptySession{cmd: cmd, master: master, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			s.mu.Lock()
			s.out.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		master.Close()
	})
	return s
}

func (s *ptySession) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// expect waits until the terminal has shown want.
func (s *ptySession) expect(t *testing.T, want string) {
	t.Helper()
	waitFor(t, time.Minute, fmt.Sprintf("%q on the terminal", want), func() (bool, string) {
		out := s.output()
		return strings.Contains(out, want), out
	})
}

func (s *ptySession) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(s.master, line); err != nil {
		t.Fatal(err)
	}
}

// wait waits for crictl to exit and returns its exit code.
func (s *ptySession) wait(t *testing.T) int {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- s.cmd.Wait() }()
	select {
	case err := <-errc:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(time.Minute):
		t.Fatalf("crictl did not exit; terminal:\n%s", s.output())
		return -1
	}
}

// TestCrictlInteractive covers the streaming server: exec -it with a tty
// and a resize, attach to a container's stdin, and port-forward to a port
// that only listens on the guest's loopback.
func TestCrictlInteractive(t *testing.T) {
	d := startDaemon(t)
	d.mustCrictl("pull", imageBusybox)
	podCfg := d.podJSON("interactive", "")
	pod := d.mustCrictl("runp", podCfg)

	// A container with stdin and a tty, for attach; it also serves HTTP on
	// the guest's loopback for port-forward.
	shell := d.mustCrictl("create", pod, d.containerJSON("shell", 0, imageBusybox,
		[]string{"sh", "-c", "mkdir -p /www && echo served-from-guest > /www/index.html && httpd -p 127.0.0.1:8080 -h /www && exec sh"},
		`, "stdin": true, "tty": true`), podCfg)
	d.mustCrictl("start", shell)

	// Interactive exec with a terminal: the shell sees a tty of the size
	// crictl's terminal has, and exit codes come back.
	ex := d.crictlPTY(t, "exec", "-it", shell, "sh")
	ex.send(t, "tty; stty size; echo product-$((6*7))\n")
	ex.expect(t, "product-42")
	if out := ex.output(); !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "30 100") {
		t.Errorf("exec -it terminal: want a pts of 30x100:\n%s", out)
	}
	if err := pty.Setsize(ex.master, &pty.Winsize{Rows: 40, Cols: 132}); err != nil {
		t.Fatal(err)
	}
	_ = ex.cmd.Process.Signal(syscall.SIGWINCH)
	waitFor(t, time.Minute, "resized terminal", func() (bool, string) {
		ex.send(t, "stty size\n")
		time.Sleep(300 * time.Millisecond)
		out := ex.output()
		return strings.Contains(out, "40 132"), out
	})
	ex.send(t, "exit 5\n")
	if code := ex.wait(t); code == 0 {
		t.Errorf("exec -it exit: crictl returned 0 for a shell that exited 5")
	}

	// Attach to the container's own shell.
	at := d.crictlPTY(t, "attach", "-it", shell)
	time.Sleep(time.Second)
	at.send(t, "echo attached-$((40+2))\n")
	at.expect(t, "attached-42")

	// Port-forward to the guest-local server.
	pfs := d.crictlPTY(t, "port-forward", pod, "18089:8080")
	pfs.expect(t, "Forwarding from")
	var body string
	waitFor(t, time.Minute, "HTTP through port-forward", func() (bool, string) {
		resp, err := http.Get("http://127.0.0.1:18089/index.html")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200, resp.Status
	})
	if strings.TrimSpace(body) != "served-from-guest" {
		t.Errorf("port-forward body %q", body)
	}
}
