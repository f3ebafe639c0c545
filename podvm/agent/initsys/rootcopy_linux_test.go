package initsys

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mkTree builds, under dir, a tree with one of each kind of entry an
// unprivileged process can make, with unusual modes and times.
func mkTree(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mtime := time.Unix(1_000_000_000, 123456789)
	must(os.MkdirAll(filepath.Join(dir, "etc/podvisor"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "etc/podvisor/modules"), []byte("/lib/modules/a.ko\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "init"), []byte("agent binary"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "secret"), nil, 0o600))
	must(os.WriteFile(filepath.Join(dir, "setgid"), []byte("x"), 0o644))
	must(os.Chmod(filepath.Join(dir, "setgid"), 0o2755|os.ModeSetgid))
	must(os.Mkdir(filepath.Join(dir, "tmp"), 0o755))
	must(os.Chmod(filepath.Join(dir, "tmp"), 0o777|os.ModeSticky))
	must(os.Mkdir(filepath.Join(dir, "proc"), 0o555))
	must(os.MkdirAll(filepath.Join(dir, "usr/sbin"), 0o750))
	must(os.WriteFile(filepath.Join(dir, "usr/sbin/runc"), make([]byte, 300<<10), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "lib64"), 0o755))
	must(os.Symlink("../usr/sbin/runc", filepath.Join(dir, "lib64/relative")))
	must(os.Symlink("/does/not/exist", filepath.Join(dir, "dangling")))
	must(os.Link(filepath.Join(dir, "init"), filepath.Join(dir, "usr/sbin/init-link")))
	must(unix.Mkfifo(filepath.Join(dir, "fifo"), 0o620))
	must(os.Chtimes(filepath.Join(dir, "init"), mtime, mtime))
	must(unix.Lutimes(filepath.Join(dir, "dangling"), []unix.Timeval{unix.NsecToTimeval(mtime.UnixNano()), unix.NsecToTimeval(mtime.UnixNano())}))
	must(os.Chtimes(filepath.Join(dir, "usr"), mtime, mtime))
}

// entry is what copyTree must preserve of one file.
type entry struct {
	mode     os.FileMode
	uid, gid uint32
	rdev     uint64
	mtime    time.Time
	content  string // regular files: contents; symlinks: target
	linkedTo string // the first path seen with the same inode
}

// snapshot describes the tree under dir, keyed by relative path.
func snapshot(t *testing.T, dir string) map[string]entry {
	t.Helper()
	tree := map[string]entry{}
	inodes := map[uint64]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := entry{mode: fi.Mode(), uid: st.Uid, gid: st.Gid, rdev: st.Rdev}
		if !fi.IsDir() {
			// Directory times change as entries are added; copyTree
			// sets them last, but the walk reads them first.
			e.mtime = fi.ModTime()
		}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.content = string(b)
			if first, ok := inodes[st.Ino]; ok {
				e.linkedTo = first
			} else {
				inodes[st.Ino] = rel
			}
		case fi.Mode()&os.ModeSymlink != 0:
			if e.content, err = os.Readlink(p); err != nil {
				return err
			}
		}
		tree[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func compareTrees(t *testing.T, src, dst string) {
	t.Helper()
	want, got := snapshot(t, src), snapshot(t, dst)
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s: not copied", p)
			continue
		}
		if g != w {
			t.Errorf("%s: copy is %+v, want %+v", p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: in the copy only", p)
		}
	}
}

func TestCopyTree(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	mkTree(t, src)
	if err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, dst)
	// Directory times are set after their contents are copied.
	fi, err := os.Stat(filepath.Join(dst, "usr"))
	if err != nil || fi.ModTime().Unix() != 1_000_000_000 {
		t.Errorf("usr mtime: %v, %v; want 1000000000", fi.ModTime(), err)
	}
	size, err := treeSize(src)
	if err != nil {
		t.Fatal(err)
	}
	// The hard-linked init counts once.
	if want := int64(len("/lib/modules/a.ko\n") + len("agent binary") + len("x") + 300<<10); size != want {
		t.Errorf("treeSize = %d, want %d", size, want)
	}
}

func TestCopyTreeRefusesExistingEntries(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	mkTree(t, src)
	if err := os.WriteFile(filepath.Join(dst, "init"), []byte("planted"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(src, dst); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("copy onto an existing file: %v, want EEXIST", err)
	}
}

// TestCopyTreeOwnersAndDevices covers what only root can set up: other
// owners, and device nodes (the initramfs has /dev/console and /dev/null).
func TestCopyTreeOwnersAndDevices(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create device nodes and files of other owners")
	}
	src, dst := t.TempDir(), t.TempDir()
	mkTree(t, src)
	if err := os.Mkdir(filepath.Join(src, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []struct {
		name       string
		typ, perm  uint32
		maj, minor uint32
	}{
		{"console", unix.S_IFCHR, 0o600, 5, 1},
		{"null", unix.S_IFCHR, 0o666, 1, 3},
		{"vda", unix.S_IFBLK, 0o660, 254, 0},
	} {
		p := filepath.Join(src, "dev", n.name)
		if err := unix.Mknod(p, n.typ|n.perm, int(unix.Mkdev(n.maj, n.minor))); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(p, n.perm); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"init", "dangling", "usr", "setgid"} {
		if err := os.Lchown(filepath.Join(src, p), 1234, 5678); err != nil {
			t.Fatal(err)
		}
	}
	// chown cleared setgid; set it again, as the archive would.
	if err := os.Chmod(filepath.Join(src, "setgid"), 0o755|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, dst)
}

// inNamespaceEnv marks the copy of the test binary that
// runInMountNamespace starts.
const inNamespaceEnv = "INITSYS_TEST_IN_MOUNT_NAMESPACE"

// runInMountNamespace runs the calling test again, in a child in new user
// and mount namespaces, where it may mount without touching the machine's
// mounts, and reports whether the caller is that child. Outside it, it
// fails the test with the child's output if the child failed, or skips
// the test if the namespaces cannot be created.
func runInMountNamespace(t *testing.T) bool {
	t.Helper()
	if os.Getenv(inNamespaceEnv) != "" {
		// The mounts must not leave the namespace in any case.
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			t.Fatalf("make mounts private: %v", err)
		}
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), inNamespaceEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Skipf("needs user and mount namespaces: %v", err)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("in a mount namespace: %v\n%s", err, out)
	}
	return false
}

// TestWalksStayOnTheirFilesystem checks that neither copyTree nor
// clearTree crosses into another filesystem or mount, as SwitchRoot needs:
// the new root is mounted inside the tree both walk.
func TestWalksStayOnTheirFilesystem(t *testing.T) {
	if !runInMountNamespace(t) {
		return
	}
	root := t.TempDir()
	src := filepath.Join(root, "src")
	for _, d := range []string{"src/dir", "src/newroot", "src/bind", "src/deep/er/mnt", "dst"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"src/a", "src/dir/b", "src/deep/c"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mounts := []struct{ source, target, fstype string }{
		// Another filesystem, as the new root is.
		{"tmpfs", "src/newroot", "tmpfs"},
		{"tmpfs", "src/deep/er/mnt", "tmpfs"},
		// The same filesystem, elsewhere: only the mount tells.
		{filepath.Join(root, "src/dir"), "src/bind", ""},
	}
	for _, m := range mounts {
		target := filepath.Join(root, m.target)
		flags := uintptr(0)
		if m.fstype == "" {
			flags = unix.MS_BIND
		}
		if err := unix.Mount(m.source, target, m.fstype, flags, ""); err != nil {
			t.Fatalf("mount %s: %v", target, err)
		}
		t.Cleanup(func() { _ = unix.Unmount(target, unix.MNT_DETACH) })
	}
	for _, f := range []string{"src/newroot/kept", "src/deep/er/mnt/kept"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	if err := copyTree(src, filepath.Join(root, "dst")); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"dst/a": true, "dst/dir/b": true, "dst/deep/c": true, "dst/deep/er": true,
		"dst/newroot": false, "dst/bind": false, "dst/deep/er/mnt": false,
	} {
		if _, err := os.Lstat(filepath.Join(root, p)); (err == nil) != want {
			t.Errorf("%s copied: %v, want %v", p, err == nil, want)
		}
	}
	if size, err := treeSize(src); err != nil || size != int64(len("src/a")+len("src/dir/b")+len("src/deep/c")) {
		t.Errorf("treeSize = %d, %v: counted what is mounted", size, err)
	}

	if err := clearTree(src); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"src": true, "src/a": false, "src/dir": false, "src/deep/c": false,
		// Mount points and the directories that lead to them stay, and
		// what is mounted there is untouched.
		"src/newroot/kept": true, "src/deep/er/mnt/kept": true, "src/bind": true,
	} {
		if _, err := os.Lstat(filepath.Join(root, p)); (err == nil) != want {
			t.Errorf("%s left: %v, want %v", p, err == nil, want)
		}
	}
	names, _ := os.ReadDir(src)
	if len(names) != 3 {
		t.Errorf("left in src: %v, want bind, deep and newroot", names)
	}
}

func TestClearTreeDoesNotFollowSymlinks(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(root, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(root, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(tree, "sub", "link")); err != nil {
		t.Fatal(err)
	}
	if err := clearTree(tree); err != nil {
		t.Fatal(err)
	}
	if names, _ := os.ReadDir(tree); len(names) != 0 {
		t.Errorf("left in the tree: %v", names)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Errorf("followed a symlink out of the tree: %v", err)
	}
}
