package virtiofsd

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// listen creates the vhost-user socket, accessible to root and, when gid is
// non-zero, to that group. Permissions are set before listen(2), so no one
// else can connect in between.
func listen(path string, gid uint32) (*os.File, error) {
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), path)
	if err := bindListen(fd, path, gid); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func bindListen(fd int, path string, gid uint32) error {
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return fmt.Errorf("bind %s: %w", path, err)
	}
	mode := uint32(0o600)
	if gid != 0 {
		mode = 0o660
		if err := unix.Lchown(path, 0, int(gid)); err != nil {
			_ = os.Remove(path)
			return fmt.Errorf("chown %s: %w", path, err)
		}
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, path, mode, 0); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	// One pending connection is all a single-client daemon needs.
	if err := unix.Listen(fd, 1); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("listen %s: %w", path, err)
	}
	return nil
}

// removeStaleSocket removes a socket a crashed run left at path. It does not
// probe it by connecting: a live virtiofsd would take the probe for its one
// VMM and exit when it closed. One virtiofsd per socket path is the
// caller's contract.
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
	return os.Remove(path)
}

func removeSocket(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
