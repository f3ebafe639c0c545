package agent

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// socketLink is how a socket fd's /proc/<pid>/fd link begins.
const socketLink = "socket:["

// errTooManyFDs stops a count that reached maxStatFDs.
var errTooManyFDs = errors.New("too many fds to count")

// countFDs counts the open fds of the processes pids, and the sockets
// among them, from proc/<pid>/fd. A process that exits meanwhile counts
// for nothing, as does an fd closed between listing and readlink. ok is
// false when a process's fds could not be listed for another reason or
// there were more than maxStatFDs in all.
func countFDs(proc string, pids []int) (fds, sockets uint64, ok bool) {
	for _, pid := range pids {
		n, s, err := processFDs(filepath.Join(proc, strconv.Itoa(pid), "fd"), maxStatFDs-fds)
		switch {
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH):
			continue
		case err != nil:
			return 0, 0, false
		}
		fds, sockets = fds+n, sockets+s
	}
	return fds, sockets, true
}

// processFDs counts the fds listed in dir (a /proc/<pid>/fd) and the
// sockets among them; more than limit fds is errTooManyFDs.
func processFDs(dir string, limit uint64) (fds, sockets uint64, err error) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	dirFD := int(f.Fd())
	// Only the prefix is compared: readlink truncates to the buffer.
	buf := make([]byte, len(socketLink))
	for {
		names, err := f.Readdirnames(256)
		for _, name := range names {
			n, err := unix.Readlinkat(dirFD, name, buf)
			if err != nil {
				continue // closed since it was listed
			}
			if fds++; fds > limit {
				return 0, 0, fmt.Errorf("%s: %w", dir, errTooManyFDs)
			}
			if string(buf[:n]) == socketLink {
				sockets++
			}
		}
		if err == io.EOF {
			return fds, sockets, nil
		}
		if err != nil {
			return 0, 0, err
		}
	}
}
