package qemu

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Files the driver keeps in Config.StateDir.
const (
	qmpSocketName   = "qmp.sock"
	agentSocketName = "agent.sock"
	logName         = "qemu.log" // QEMU's stdout and stderr
)

type paths struct {
	qmp, agent, log string
}

func pathsIn(stateDir string) paths {
	return paths{
		qmp:   filepath.Join(stateDir, qmpSocketName),
		agent: filepath.Join(stateDir, agentSocketName),
		log:   filepath.Join(stateDir, logName),
	}
}

func (p paths) sockets() []string { return []string{p.qmp, p.agent} }

// listenUnix binds and listens on path and returns the listening socket as
// a file to hand to QEMU. The daemon, not QEMU, creates the socket: it
// accepts connections (into the backlog) from the moment QEMU is exec'd, so
// nothing polls for QEMU to create it, and only root may connect (0600).
func listenUnix(path string) (*os.File, error) {
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := bindPrivate(fd, path); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.Listen(fd, 8); err != nil {
		unix.Close(fd)
		_ = os.Remove(path)
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// bindPrivate binds fd to path and restricts the socket to its owner before
// listen, so nobody can connect in between.
func bindPrivate(fd int, path string) error {
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return fmt.Errorf("bind %s: %w", path, err)
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, path, 0o600, 0); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	return nil
}

// removeStaleSocket removes a socket left by a VMM that died without
// cleaning up, and refuses to touch one that still answers.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	c, err := net.Dial("unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s is in use by a running process", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("probe %s: %w", path, err)
	}
	return os.Remove(path)
}

// createFile creates a file for QEMU to write through an inherited fd. It
// refuses to follow a symlink: StateDir belongs to the VMM user, whose
// previous QEMU may have been taken over by its guest.
func createFile(path string, flags int) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|unix.O_NOFOLLOW|flags, 0o640)
}

// removeFiles removes paths, ignoring those already gone.
func removeFiles(paths ...string) error {
	var errs []error
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// logTail returns the last lines of QEMU's log, to say why it exited.
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 2048
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		_, _ = f.Seek(-max, io.SeekEnd)
	}
	b, _ := io.ReadAll(io.LimitReader(f, max))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, "; ")
}
