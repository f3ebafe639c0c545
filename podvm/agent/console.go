package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// consoleTimeout bounds the wait for runc's pty master once runc exited: it
// sent the descriptor before exiting, so it is already queued.
const consoleTimeout = 5 * time.Second

// consoleSocket is the unix socket a terminal process's pty master arrives
// on: runc's --console-socket. Each process gets its own, in a private
// directory, so no other process can hand the agent a descriptor.
type consoleSocket struct {
	dir string
	l   *net.UnixListener
}

func newConsoleSocket(parent string) (*consoleSocket, error) {
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	dir, err := os.MkdirTemp(parent, "c")
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "s"), Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("console socket: %w", err)
	}
	return &consoleSocket{dir: dir, l: l}, nil
}

func (c *consoleSocket) path() string { return filepath.Join(c.dir, "s") }

func (c *consoleSocket) close() {
	_ = c.l.Close()
	_ = os.RemoveAll(c.dir)
}

// receive takes the pty master runc sent.
func (c *consoleSocket) receive(ctx context.Context) (*os.File, error) {
	deadline := time.Now().Add(consoleTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.l.SetDeadline(deadline)
	conn, err := c.l.AcceptUnix()
	if err != nil {
		return nil, fmt.Errorf("console socket: accept: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline)
	// runc sends the pty's name as data and the descriptor as SCM_RIGHTS.
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*4))
	_, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("console socket: read: %w", err)
	}
	fds, err := parseRights(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
		return nil, fmt.Errorf("console socket: got %d descriptors, want 1", len(fds))
	}
	unix.CloseOnExec(fds[0])
	if _, err := unix.IoctlGetTermios(fds[0], unix.TCGETS); err != nil {
		_ = unix.Close(fds[0])
		return nil, fmt.Errorf("console socket: descriptor is not a terminal: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		f, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		fds = append(fds, f...)
	}
	return fds, nil
}
