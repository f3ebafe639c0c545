package initsys

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

type mountSpec struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
	mode                   os.FileMode // of the mount point, if created
}

// mounts are the filesystems of the guest, parents before children.
// /dev is not noexec: some programs map /dev/zero executable.
var mounts = []mountSpec{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", 0o555},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", 0o555},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755", 0o755},
	// A private devpts instance; ptmxmode lets any user allocate a pty and
	// gid 5 is the conventional tty group.
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5", 0o755},
	{"shm", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", 0o1777},
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", 0o555},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", 0o1777},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755", 0o755},
}

func mountAll() error {
	for _, m := range mounts {
		if err := mount(m); err != nil {
			return err
		}
	}
	return nil
}

func mount(m mountSpec) error {
	if err := os.MkdirAll(m.target, m.mode); err != nil {
		return fmt.Errorf("mount %s: %w", m.target, err)
	}
	if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
	}
	return nil
}

// devLinks creates the /dev links devtmpfs does not have.
func devLinks() error {
	links := [][2]string{
		{"/proc/self/fd", "/dev/fd"},
		{"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"},
		{"/proc/self/fd/2", "/dev/stderr"},
	}
	for _, l := range links {
		if err := os.Symlink(l[0], l[1]); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	return nil
}

// maxTagLen is the size of the tag field of a virtio-fs device.
const maxTagLen = 36

// MountShared mounts the virtio-fs filesystem tagged tag on dir, creating
// dir. Device nodes on it are not honoured: device access in the guest is
// granted by the container runtime, not by files the host shares.
func MountShared(tag, dir string) error {
	if tag == "" || len(tag) > maxTagLen {
		return fmt.Errorf("mount shared: tag %q: empty or longer than %d bytes", tag, maxTagLen)
	}
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("mount shared: dir %q is not absolute", dir)
	}
	return mount(mountSpec{source: tag, target: dir, fstype: "virtiofs", flags: unix.MS_NODEV, mode: 0o755})
}
