package mountns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create mount namespaces")
	}
}

// mkdirs creates dirs or fails the test.
func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// tmpfs mounts a tmpfs at dir in the caller's namespace until the test ends.
func tmpfs(t *testing.T, dir string) {
	t.Helper()
	if err := unix.Mount("none", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
}

// create makes a namespace pinned under the test's directory and removes it
// when the test ends.
func create(t *testing.T, dir string) *Namespace {
	t.Helper()
	ns, err := Create(filepath.Join(dir, "mntns"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Remove(ns.Pin()); err != nil {
			t.Error(err)
		}
	})
	return ns
}

// hostMounts lists the mounts at or below dir as the test (the host) sees
// them.
func hostMounts(t *testing.T, dir string) []string {
	t.Helper()
	var m []string
	var err error
	inHost(func() { m, err = MountsUnder(dir) })
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// inHost runs fn on a thread that is certainly in the host's namespace.
func inHost(fn func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	fn()
}

// TestMountsStayInside mounts a tmpfs inside a namespace: a second handle
// opened from the pin sees it, the host does not, and after Remove the pin
// is gone.
func TestMountsStayInside(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	target := filepath.Join(root, "shared", "m")
	mkdirs(t, target)
	ns := create(t, root)
	if err := ns.Run(func() error {
		if err := unix.Mount("none", target, "tmpfs", 0, "size=1m"); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(target, "inside"), []byte("x"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	if m := hostMounts(t, filepath.Join(root, "shared")); len(m) != 0 {
		t.Errorf("host sees %v", m)
	}
	if _, err := os.Stat(filepath.Join(target, "inside")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file written inside the namespace is on the host: %v", err)
	}

	again, err := Open(ns.Pin())
	if err != nil {
		t.Fatal(err)
	}
	var inside []string
	if err := again.Run(func() (err error) {
		inside, err = MountsUnder(filepath.Join(root, "shared"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(inside, []string{target}) {
		t.Errorf("inside the namespace: %v, want [%s]", inside, target)
	}

	if err := Remove(ns.Pin()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ns.Pin()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pin survives Remove: %v", err)
	}
	if _, err := Open(ns.Pin()); !errors.Is(err, ErrNotPinned) {
		t.Errorf("Open after Remove: %v, want ErrNotPinned", err)
	}
	if err := Remove(ns.Pin()); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

// TestRunLeavesNoThreadInside runs many functions in a namespace, then
// checks every thread the runtime hands out is still in the host's.
func TestRunLeavesNoThreadInside(t *testing.T) {
	needRoot(t)
	ns := create(t, t.TempDir())
	var host string
	var err error
	inHost(func() { host, err = os.Readlink("/proc/thread-self/ns/mnt") })
	if err != nil {
		t.Fatal(err)
	}
	if self, _ := os.Readlink("/proc/self/ns/mnt"); self != host {
		t.Fatalf("the main thread is in %s, not in the host's %s", self, host)
	}
	for i := 0; i < 20; i++ {
		if err := ns.Run(func() error {
			in, err := os.Readlink("/proc/thread-self/ns/mnt")
			if err == nil && in == host {
				err = errors.New("Run's thread is in the host's namespace")
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inHost(func() {
				if got, err := os.Readlink("/proc/thread-self/ns/mnt"); err != nil || got != host {
					errs <- errors.New("a thread in " + got + " instead of " + host)
				}
			})
		}()
	}
	wg.Wait()
	if self, _ := os.Readlink("/proc/self/ns/mnt"); self != host {
		errs <- errors.New("the main thread moved to " + self)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestHostTreeMovedInside clones a host directory's mount tree on a host
// thread and moves it into the namespace, as ShareHostPath does with a
// volume. The host can then detach and remove its submount while the clone
// still serves inside: nothing of the namespace pins host dentries.
func TestHostTreeMovedInside(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	vol, sub, target := filepath.Join(root, "vol"), filepath.Join(root, "vol", "sub"), filepath.Join(root, "shared", "v")
	mkdirs(t, sub, target)
	tmpfs(t, sub)
	if err := os.WriteFile(filepath.Join(sub, "data"), []byte("sub"), 0o644); err != nil {
		t.Fatal(err)
	}
	ns := create(t, root)

	var fd int
	var err error
	inHost(func() {
		fd, err = unix.OpenTree(unix.AT_FDCWD, vol, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		t.Fatal(err)
	}
	if err := ns.Run(func() error {
		return unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH)
	}); err != nil {
		t.Fatalf("move a host tree into the namespace: %v", err)
	}

	if err := ns.Run(func() error {
		b, err := os.ReadFile(filepath.Join(target, "sub", "data"))
		if err == nil && string(b) != "sub" {
			err = errors.New("wrong content " + string(b))
		}
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(target, "sub", "w"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
			return errors.New("recursive read-only clone is writable")
		}
		return nil
	}); err != nil {
		t.Fatalf("clone inside: %v", err)
	}

	if err := unix.Unmount(sub, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(sub); err != nil {
		t.Fatalf("rmdir of the host's submount while the namespace holds a clone: %v", err)
	}
	// The kernel detaches mounts on a removed directory in every
	// namespace: the clone of the submount goes, the volume's stays.
	if err := ns.Run(func() error {
		m, err := MountsUnder(target)
		if err == nil && !slices.Equal(m, []string{target}) {
			err = fmt.Errorf("mounts %v, want [%s]", m, target)
		}
		return err
	}); err != nil {
		t.Fatalf("inside after the host removed its submount: %v", err)
	}
}

// TestHostMountsPropagateIn checks the slave copy: a mount the host makes
// later under one of its shared mounts shows up inside.
func TestHostMountsPropagateIn(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	shared := filepath.Join(root, "shared")
	mkdirs(t, shared)
	tmpfs(t, shared)
	if err := unix.Mount("", shared, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	pins := filepath.Join(root, "pins")
	mkdirs(t, pins)
	ns := create(t, pins)
	later := filepath.Join(shared, "later")
	mkdirs(t, later)
	tmpfs(t, later)
	if err := ns.Run(func() error {
		m, err := MountsUnder(shared)
		if err == nil && !slices.Contains(m, later) {
			err = errors.New("host mount made later is not inside")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestPrivateDir checks that a pin cannot be created on a shared mount,
// and can once PrivateDir made its directory private.
func TestPrivateDir(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	tmpfs(t, root)
	if err := unix.Mount("", root, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	pins := filepath.Join(root, "pins")
	mkdirs(t, pins)
	if _, err := Create(filepath.Join(pins, "refused")); err == nil {
		Remove(filepath.Join(pins, "refused"))
		t.Fatal("pinned a namespace on a shared mount")
	}
	if _, err := os.Stat(filepath.Join(pins, "refused")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed Create left its pin file: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := PrivateDir(pins); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { unix.Unmount(pins, unix.MNT_DETACH) })
	if m := hostMounts(t, pins); len(m) != 1 {
		t.Errorf("mounts at %s after PrivateDir twice: %v, want one", pins, m)
	}
	create(t, pins)
	// An unshared directory is left alone.
	plain := t.TempDir()
	if err := PrivateDir(plain); err != nil {
		t.Fatal(err)
	}
	if m := hostMounts(t, plain); len(m) != 0 {
		t.Errorf("PrivateDir mounted on a directory that needed nothing: %v", m)
	}
}

// TestChildStartsInside starts a process from Run and finds it in the
// namespace, alive after Run's thread has gone.
func TestChildStartsInside(t *testing.T) {
	needRoot(t)
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	ns := create(t, t.TempDir())
	var cmd *exec.Cmd
	if err := ns.Run(func() error {
		cmd = exec.Command(sleep, "30")
		return cmd.Start()
	}); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var pinned, child unix.Stat_t
	if err := unix.Stat(ns.Pin(), &pinned); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/proc/"+strconv.Itoa(cmd.Process.Pid)+"/ns/mnt", &child); err != nil {
		t.Fatal(err)
	}
	if child.Ino != pinned.Ino {
		t.Errorf("child in mount namespace %d, want %d", child.Ino, pinned.Ino)
	}
}

func TestOpenRefusesWhatIsNoPin(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, nil, 0o600)
	for _, p := range []string{plain, filepath.Join(dir, "missing")} {
		if _, err := Open(p); !errors.Is(err, ErrNotPinned) {
			t.Errorf("Open(%s) = %v, want ErrNotPinned", p, err)
		}
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/a/b`:         "/a/b",
		`/a\040b`:      "/a b",
		`/x\011y\134z`: "/x\ty\\z",
		`/trailing\04`: `/trailing\04`,
	} {
		if got := UnescapeMountinfo(in); got != want {
			t.Errorf("UnescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}
