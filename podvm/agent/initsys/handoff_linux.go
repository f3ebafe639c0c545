package initsys

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// HandoffEnv names, in the environment of an agent re-executed by Reexec,
// the file descriptor that carries the secrets to it. Its presence is also
// what tells the re-executed agent that it already switched root.
const HandoffEnv = "PODVISOR_HANDOFF_FD"

// handoffSeals make the hand-off read-only and fixed in size for good, so
// the re-executed agent reads exactly what was handed over.
const handoffSeals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

// maxHandoffSize bounds what TakeHandoff reads: the secrets and their JSON
// (base64) encoding.
const maxHandoffSize = maxSecretFiles * (MaxSecretSize*4/3 + 1024)

// Reexec replaces the process with a fresh copy of the agent: the program
// at os.Args[0] (the kernel's /init, now on the new root), with the same
// arguments and environment, and the secrets in a sealed memfd that only
// the new image inherits. The secrets never touch a filesystem; the new
// agent takes them with TakeHandoff before anything else and closes the
// descriptor, so no process it starts can inherit it. Reexec returns only
// on failure.
func Reexec(secrets map[string][]byte) error {
	exe := os.Args[0]
	if !filepath.IsAbs(exe) {
		return fmt.Errorf("re-exec: program %q is not an absolute path", exe)
	}
	fd, err := newHandoff(secrets)
	if err != nil {
		return fmt.Errorf("re-exec: %w", err)
	}
	defer unix.Close(fd)
	// The one descriptor execve must keep.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
		return fmt.Errorf("re-exec: %w", err)
	}
	env := []string{HandoffEnv + "=" + strconv.Itoa(fd)}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, HandoffEnv+"=") {
			env = append(env, kv)
		}
	}
	err = syscall.Exec(exe, os.Args, env)
	return fmt.Errorf("re-exec %s: %w", exe, err)
}

// newHandoff returns a sealed, close-on-exec memfd holding secrets.
func newHandoff(secrets map[string][]byte) (fd int, retErr error) {
	b, err := json.Marshal(secrets)
	if err != nil {
		return -1, err
	}
	defer clear(b)
	fd, err = unix.MemfdCreate("podvisor-handoff", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, fmt.Errorf("memfd: %w", err)
	}
	defer func() {
		if retErr != nil {
			unix.Close(fd)
		}
	}()
	for off := 0; off < len(b); {
		n, err := unix.Pwrite(fd, b[off:], int64(off))
		if err != nil {
			return -1, fmt.Errorf("write hand-off: %w", err)
		}
		off += n
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, handoffSeals); err != nil {
		return -1, fmt.Errorf("seal hand-off: %w", err)
	}
	return fd, nil
}

// TakeHandoff returns the secrets Reexec handed over to this process, and
// false, with no error, when it was not started by Reexec. The descriptor
// is closed and HandoffEnv unset whatever happens. It must be the first
// thing the agent does: until then the descriptor is inheritable.
func TakeHandoff() (map[string][]byte, bool, error) {
	v, ok := os.LookupEnv(HandoffEnv)
	if !ok {
		return nil, false, nil
	}
	os.Unsetenv(HandoffEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, true, fmt.Errorf("secrets hand-off: %s=%q is not a descriptor", HandoffEnv, v)
	}
	defer unix.Close(fd)
	b, err := readHandoff(fd)
	if err != nil {
		return nil, true, fmt.Errorf("secrets hand-off: fd %d: %w", fd, err)
	}
	defer clear(b)
	var secrets map[string][]byte
	if err := json.Unmarshal(b, &secrets); err != nil {
		return nil, true, fmt.Errorf("secrets hand-off: %w", err)
	}
	return secrets, true, nil
}

// readHandoff reads the hand-off memfd fd, refusing anything Reexec could
// not have made: a descriptor that is not sealed against change (a pipe, a
// regular file), or one larger than maxHandoffSize.
func readHandoff(fd int) ([]byte, error) {
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, fmt.Errorf("not a sealed memfd: %w", err)
	}
	if seals&handoffSeals != handoffSeals {
		return nil, fmt.Errorf("not sealed (seals %#x)", seals)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Size > maxHandoffSize {
		return nil, fmt.Errorf("%d bytes, more than %d", st.Size, maxHandoffSize)
	}
	b := make([]byte, st.Size)
	for off := 0; off < len(b); {
		n, err := unix.Pread(fd, b[off:], int64(off))
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, errors.New("short read")
		}
		off += n
	}
	return b, nil
}
