package initsys

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// newRootDir is where SwitchRoot builds the new root before moving it onto
// /. It is left behind, empty, on the old root, which nothing can reach.
const newRootDir = "/.newroot"

// newRootHeadroom is the space the new root has beyond its contents and a
// quarter more: nothing but the odd mount point is created on / (/run and
// /tmp are filesystems of their own), so a root that fills up is a bug, and
// must not take the guest's memory with it.
const newRootHeadroom = 16 << 20

// RootIsInitramfs reports whether / is a memory filesystem (ramfs or
// tmpfs), as the kernel's initramfs root is. Called before the agent has
// switched root, a true answer means / is the initramfs, on which
// pivot_root(2) fails, so runc cannot confine a container with it; after
// SwitchRoot, / is a tmpfs too, so callers tell the two apart by whether
// they were re-executed (see TakeHandoff).
func RootIsInitramfs() (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return false, fmt.Errorf("statfs /: %w", err)
	}
	return st.Type == unix.RAMFS_MAGIC || st.Type == unix.TMPFS_MAGIC, nil
}

// SwitchRoot moves the calling process off the initramfs onto a tmpfs copy
// of it, as busybox switch_root does: it mounts a size-bounded tmpfs on
// /.newroot, copies the initramfs into it, deletes the initramfs's files to
// give their memory back, moves the tmpfs onto / and chroots into it. The
// new / is a mount with a parent, so runc can pivot_root(2) a container's
// root and detach the guest's mounts from the container's mount namespace
// rather than merely chroot into it.
//
// Every mount is made private first: MS_MOVE refuses a mount under a
// shared parent, and pivot_root refuses when the parent of the current
// root is shared. Nothing in the guest needs propagation between its own
// mounts.
//
// Call it as PID 1 before anything else is mounted, after taking the keys
// out of the initramfs (they are not copied: ReadAndRemoveSecrets deleted
// them), and then re-execute the agent (Reexec): the running binary is the
// old root's /init, whose memory is only released when nothing maps it.
func SwitchRoot() error {
	if err := requirePID1("switch root"); err != nil {
		return err
	}
	isInitramfs, err := RootIsInitramfs()
	if err != nil {
		return fmt.Errorf("switch root: %w", err)
	}
	if !isInitramfs {
		return fmt.Errorf("switch root: / is not an initramfs")
	}
	steps := []step{
		{"make mounts private", func() error { return unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "") }},
		{"mount the new root", mountNewRoot},
		{"copy the initramfs", func() error { return copyTree("/", newRootDir) }},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			// The old root is intact; leave it as it was.
			_ = unix.Unmount(newRootDir, unix.MNT_DETACH)
			_ = os.Remove(newRootDir)
			return fmt.Errorf("switch root: %s: %w", s.name, err)
		}
	}
	// Past this point there is no way back, and a failure leaves a guest
	// that can only power off, which the caller does.
	if err := clearTree("/"); err != nil {
		// Only memory is lost: the keys were never copied, and nothing
		// will be able to reach the old root once it is covered.
		klog.ErrorS(err, "Switch root: initramfs files left behind")
	}
	for _, s := range []step{
		{"chdir", func() error { return unix.Chdir(newRootDir) }},
		{"move the new root onto /", func() error { return unix.Mount(".", "/", "", unix.MS_MOVE, "") }},
		{"chroot", func() error { return unix.Chroot(".") }},
		{"chdir /", func() error { return unix.Chdir("/") }},
	} {
		if err := s.fn(); err != nil {
			return fmt.Errorf("switch root: %s: %w", s.name, err)
		}
	}
	return nil
}

// mountNewRoot mounts on newRootDir a tmpfs big enough for a copy of the
// initramfs and little more.
func mountNewRoot() error {
	used, err := treeSize("/")
	if err != nil {
		return err
	}
	size := used + used/4 + newRootHeadroom
	if err := os.Mkdir(newRootDir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	opts := fmt.Sprintf("mode=0755,size=%d", size)
	if err := unix.Mount("tmpfs", newRootDir, "tmpfs", 0, opts); err != nil {
		return fmt.Errorf("mount tmpfs (%s) on %s: %w", opts, newRootDir, err)
	}
	return nil
}
