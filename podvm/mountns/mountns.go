// Package mountns keeps a pod's mounts out of the host's mount namespace.
// It creates a mount namespace, pins it on a file so that it outlives the
// process that made it (a restarted daemon opens it again from the pin), and
// runs functions inside it on an OS thread of their own: mounts made there,
// and processes started there, live in the namespace.
//
// Go threads share one fs_struct, and setns(CLONE_NEWNS) refuses a thread
// that shares it. Run therefore locks a fresh goroutine to a thread other
// than the main one, gives the thread a private fs_struct, enters the
// namespace and never unlocks: when the goroutine returns, the runtime ends
// the thread instead of handing it, still inside the namespace, to other
// goroutines.
package mountns

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotPinned is returned by Open when path holds no mount namespace.
var ErrNotPinned = errors.New("no mount namespace pinned")

// Namespace is a mount namespace pinned on a file.
type Namespace struct {
	pin string
}

// Create makes a mount namespace and pins it on the file pin, which must
// not exist yet. The namespace starts as a copy of the caller's in which
// every mount is a slave: mounts the host makes later under its shared
// mounts still show up inside, and nothing mounted inside shows up on the
// host. pin's directory must not be on a shared mount (the kernel refuses
// to propagate a namespace pin); PrivateDir makes it so.
func Create(pin string) (_ *Namespace, retErr error) {
	f, err := os.OpenFile(pin, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create mount namespace pin: %w", err)
	}
	f.Close()
	defer func() {
		if retErr != nil {
			os.Remove(pin)
		}
	}()
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	onDisposableThread(func() {
		fd, err := newNamespace()
		ch <- result{fd, err}
	})
	r := <-ch
	if r.err != nil {
		return nil, fmt.Errorf("create mount namespace: %w", r.err)
	}
	defer unix.Close(r.fd)
	// The pin is made from the caller's namespace: the kernel refuses to
	// pin a namespace inside itself, which would keep it alive forever.
	src := fmt.Sprintf("/proc/self/fd/%d", r.fd)
	if err := unix.Mount(src, pin, "", unix.MS_BIND, ""); err != nil {
		return nil, fmt.Errorf("pin mount namespace at %s: %w", pin, err)
	}
	return &Namespace{pin: pin}, nil
}

// newNamespace moves the calling (locked) thread into a new mount
// namespace of slave mounts and returns a descriptor of the namespace.
func newNamespace() (int, error) {
	if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
		return -1, fmt.Errorf("unshare: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return -1, fmt.Errorf("make mounts slaves: %w", err)
	}
	fd, err := unix.Open("/proc/thread-self/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	return fd, nil
}

// Open returns the namespace pinned at pin by an earlier Create, possibly
// of another process. It fails with ErrNotPinned when pin is missing or
// holds no namespace.
func Open(pin string) (*Namespace, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(pin, &st); err != nil {
		return nil, fmt.Errorf("%w at %s: %v", ErrNotPinned, pin, err)
	}
	if st.Type != unix.NSFS_MAGIC {
		return nil, fmt.Errorf("%w at %s", ErrNotPinned, pin)
	}
	return &Namespace{pin: pin}, nil
}

// Pin is the file the namespace is pinned on.
func (n *Namespace) Pin() string { return n.pin }

// Run calls fn on an OS thread inside the namespace and returns its error.
// Paths fn uses resolve in the namespace; a process fn starts (exec.Cmd)
// starts in it. The thread ends when fn returns, so fn must not leave work
// behind that needs it (a child with Pdeathsig set would get the signal).
// Goroutines fn starts run in the caller's namespace, not in this one.
func (n *Namespace) Run(fn func() error) error {
	fd, err := unix.Open(n.pin, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open mount namespace %s: %w", n.pin, err)
	}
	defer unix.Close(fd)
	ch := make(chan error, 1)
	onDisposableThread(func() {
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			ch <- fmt.Errorf("unshare fs: %w", err)
			return
		}
		if err := unix.Setns(fd, unix.CLONE_NEWNS); err != nil {
			ch <- fmt.Errorf("enter mount namespace %s: %w", n.pin, err)
			return
		}
		ch <- fn()
	})
	return <-ch
}

// onDisposableThread calls fn in a new goroutine locked to an OS thread
// that ends with it. The goroutine never unlocks (see the package comment).
// It must not get the process's main thread: the runtime cannot end that
// one, and /proc/self names it, so code that reads /proc/self/mountinfo
// would see fn's namespace. A goroutine that finds itself there keeps the
// main thread locked, which sends fn's goroutine to another thread.
func onDisposableThread(fn func()) {
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			fn()
			return
		}
		done := make(chan struct{})
		onDisposableThread(func() {
			defer close(done)
			fn()
		})
		<-done
		runtime.UnlockOSThread()
	}()
}

// Remove unpins the namespace at pin and removes the file. The namespace,
// and every mount in it, goes away once no process or thread is left in
// it. A missing pin is no error.
func Remove(pin string) error {
	err := unix.Unmount(pin, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unpin mount namespace %s: %w", pin, err)
	}
	if err := os.Remove(pin); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove mount namespace pin: %w", err)
	}
	return nil
}

// PrivateDir makes sure that pins can be created below dir: when the mount
// dir is on has shared propagation (systemd makes / shared), dir becomes a
// private mount of its own. It is idempotent.
func PrivateDir(dir string) error {
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	mp, shared, err := mountOf(dir)
	if err != nil {
		return err
	}
	if !shared {
		return nil
	}
	if mp != dir {
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s on itself: %w", dir, err)
		}
	}
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private: %w", dir, err)
	}
	return nil
}

// mountOf returns the mount point of the mount dir is on, as the calling
// thread sees it, and whether that mount has shared propagation. dir must
// be free of symlinks.
func mountOf(dir string) (mountPoint string, shared bool, err error) {
	f, err := os.Open("/proc/thread-self/mountinfo")
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		mp := UnescapeMountinfo(fields[4])
		if !(mp == "/" || mp == dir || strings.HasPrefix(dir, mp+"/")) || len(mp) < len(mountPoint) {
			continue
		}
		// Later lines with the same mount point are mounted on top.
		mountPoint, shared = mp, false
		for _, opt := range fields[6:] {
			if opt == "-" {
				break
			}
			shared = shared || strings.HasPrefix(opt, "shared:")
		}
	}
	if err := sc.Err(); err != nil {
		return "", false, err
	}
	if mountPoint == "" {
		return "", false, fmt.Errorf("no mount holds %s", dir)
	}
	return mountPoint, shared, nil
}

// MountsUnder lists the mount points at or below dir in the calling
// thread's mount namespace (inside Run: the namespace's), deepest first.
func MountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/thread-self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := UnescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// A mount below another has the longer path; several on one point
	// come off one at a time by that path.
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}

// UnescapeMountinfo undoes the octal escapes (\040 for space, …) of
// mountinfo fields.
func UnescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var n int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &n); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
