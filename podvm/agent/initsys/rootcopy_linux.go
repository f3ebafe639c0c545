package initsys

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// The tree walks below work on directory descriptors and never follow a
// symlink, and stay on the filesystem they start on: an entry on another
// device, or the root of another mount (a bind mount of the same
// filesystem has the same device), is not entered. At boot that is what
// keeps SwitchRoot from copying or deleting the new root it is building.

// walkStatMask is what the walks need from statx.
const walkStatMask = unix.STATX_TYPE | unix.STATX_MODE | unix.STATX_NLINK | unix.STATX_UID |
	unix.STATX_GID | unix.STATX_ATIME | unix.STATX_MTIME | unix.STATX_INO | unix.STATX_SIZE

// openDir opens the directory name relative to dfd without following a
// symlink.
func openDir(dfd int, name string) (*os.File, error) {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// lstatAt stats name relative to dfd without following a symlink.
func lstatAt(dfd int, name string) (unix.Statx_t, error) {
	var st unix.Statx_t
	err := unix.Statx(dfd, name, unix.AT_SYMLINK_NOFOLLOW|unix.AT_STATX_DONT_SYNC, walkStatMask, &st)
	if err != nil {
		return st, &os.PathError{Op: "statx", Path: name, Err: err}
	}
	return st, nil
}

// fsID identifies the filesystem a walk stays on.
type fsID struct{ major, minor uint32 }

func fsOf(st *unix.Statx_t) fsID { return fsID{st.Dev_major, st.Dev_minor} }

// foreign reports whether st is an entry the walk must not enter or touch:
// on another filesystem, or the root of a mount.
func foreign(st *unix.Statx_t, fs fsID) bool {
	if fsOf(st) != fs {
		return true
	}
	return st.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && st.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
}

// readNames lists the entries of the open directory d.
func readNames(d *os.File) ([]string, error) {
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", d.Name(), err)
	}
	return names, nil
}

// treeSize is the number of bytes the regular files under dir occupy,
// counted as copyTree would copy them (on dir's filesystem, hard links
// once).
func treeSize(dir string) (int64, error) {
	d, err := openDir(unix.AT_FDCWD, dir)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	st, err := lstatAt(int(d.Fd()), ".")
	if err != nil {
		return 0, err
	}
	seen := map[uint64]bool{}
	return sizeDir(d, fsOf(&st), seen)
}

func sizeDir(d *os.File, fs fsID, seen map[uint64]bool) (int64, error) {
	names, err := readNames(d)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, name := range names {
		st, err := lstatAt(int(d.Fd()), name)
		if err != nil {
			return 0, err
		}
		if foreign(&st, fs) {
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			if !seen[st.Ino] {
				seen[st.Ino] = true
				total += int64(st.Size)
			}
		case unix.S_IFDIR:
			sub, err := openDir(int(d.Fd()), name)
			if err != nil {
				return 0, err
			}
			n, err := sizeDir(sub, fs, seen)
			sub.Close()
			if err != nil {
				return 0, err
			}
			total += n
		}
	}
	return total, nil
}

// copyTree copies the tree under src into the existing, empty directory
// dst: directories, regular files, symlinks, device nodes, FIFOs and
// sockets, with their mode bits (setuid, setgid and sticky included),
// owner, group and times, and hard links as hard links. Entries src shares
// with other filesystems are left out (see the walks' comment above).
// Extended attributes are not copied: the initramfs, a newc archive, has
// none. dst's own attributes are left as they are.
func copyTree(src, dst string) error {
	s, err := openDir(unix.AT_FDCWD, src)
	if err != nil {
		return fmt.Errorf("copy tree: %w", err)
	}
	defer s.Close()
	d, err := openDir(unix.AT_FDCWD, dst)
	if err != nil {
		return fmt.Errorf("copy tree: %w", err)
	}
	defer d.Close()
	st, err := lstatAt(int(s.Fd()), ".")
	if err != nil {
		return fmt.Errorf("copy tree: %w", err)
	}
	c := &treeCopier{fs: fsOf(&st), dstRoot: int(d.Fd()), links: map[uint64]string{}}
	if err := c.copyDir(s, d, "."); err != nil {
		return fmt.Errorf("copy tree %s to %s: %w", src, dst, err)
	}
	return nil
}

type treeCopier struct {
	fs      fsID
	dstRoot int
	// links maps the inode of a file with several links to the path,
	// relative to dstRoot, of its first copy.
	links map[uint64]string
}

// copyDir copies the entries of s into d; rel is d's path relative to the
// destination root.
func (c *treeCopier) copyDir(s, d *os.File, rel string) error {
	names, err := readNames(s)
	if err != nil {
		return err
	}
	sfd, dfd := int(s.Fd()), int(d.Fd())
	for _, name := range names {
		st, err := lstatAt(sfd, name)
		if err != nil {
			return err
		}
		if foreign(&st, c.fs) {
			continue
		}
		if err := c.copyEntry(sfd, dfd, name, path.Join(rel, name), &st); err != nil {
			return err
		}
	}
	return nil
}

func (c *treeCopier) copyEntry(sfd, dfd int, name, rel string, st *unix.Statx_t) error {
	typ := uint32(st.Mode) & unix.S_IFMT
	switch typ {
	case unix.S_IFDIR:
		// Writable by us until filled; the real mode is set below.
		if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
			return &os.PathError{Op: "mkdir", Path: rel, Err: err}
		}
		sub, err := openDir(sfd, name)
		if err != nil {
			return err
		}
		defer sub.Close()
		dsub, err := openDir(dfd, name)
		if err != nil {
			return err
		}
		defer dsub.Close()
		if err := c.copyDir(sub, dsub, rel); err != nil {
			return err
		}
	case unix.S_IFREG:
		if st.Nlink > 1 {
			if first, ok := c.links[st.Ino]; ok {
				if err := unix.Linkat(c.dstRoot, first, dfd, name, 0); err != nil {
					return &os.LinkError{Op: "link", Old: first, New: rel, Err: err}
				}
				return nil
			}
			c.links[st.Ino] = rel
		}
		if err := copyFileAt(sfd, dfd, name, rel); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := readlinkAt(sfd, name)
		if err != nil {
			return &os.PathError{Op: "readlink", Path: rel, Err: err}
		}
		if err := unix.Symlinkat(target, dfd, name); err != nil {
			return &os.PathError{Op: "symlink", Path: rel, Err: err}
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		dev := int(unix.Mkdev(st.Rdev_major, st.Rdev_minor))
		if err := unix.Mknodat(dfd, name, typ|0o600, dev); err != nil {
			return &os.PathError{Op: "mknod", Path: rel, Err: err}
		}
	default:
		return &os.PathError{Op: "copy", Path: rel, Err: fmt.Errorf("unknown file type %#o", typ)}
	}
	return setAttrs(dfd, name, rel, st)
}

// setAttrs gives the copy name in dfd the owner, mode and times of st. The
// mode is set after the owner because chown clears setuid and setgid.
func setAttrs(dfd int, name, rel string, st *unix.Statx_t) error {
	if err := unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "chown", Path: rel, Err: err}
	}
	if uint32(st.Mode)&unix.S_IFMT != unix.S_IFLNK {
		// Symlinks have no mode of their own to set.
		if err := unix.Fchmodat(dfd, name, uint32(st.Mode)&0o7777, 0); err != nil {
			return &os.PathError{Op: "chmod", Path: rel, Err: err}
		}
	}
	ts := []unix.Timespec{
		{Sec: st.Atime.Sec, Nsec: int64(st.Atime.Nsec)},
		{Sec: st.Mtime.Sec, Nsec: int64(st.Mtime.Nsec)},
	}
	if err := unix.UtimesNanoAt(dfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: rel, Err: err}
	}
	return nil
}

// copyFileAt copies the contents of the regular file name in sfd to a new
// file of the same name in dfd.
func copyFileAt(sfd, dfd int, name, rel string) error {
	in, err := unix.Openat(sfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: rel, Err: err}
	}
	inf := os.NewFile(uintptr(in), name)
	defer inf.Close()
	out, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "create", Path: rel, Err: err}
	}
	outf := os.NewFile(uintptr(out), name)
	_, err = io.Copy(outf, inf)
	if cerr := outf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", rel, err)
	}
	return nil
}

func readlinkAt(dfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// clearTree deletes everything under dir that is on dir's filesystem, as
// busybox switch_root does to the initramfs it leaves: it does not enter
// other filesystems or mounts, and so keeps the directories that lead to
// them. dir itself stays. It goes on past a failure and returns them all.
func clearTree(dir string) error {
	d, err := openDir(unix.AT_FDCWD, dir)
	if err != nil {
		return fmt.Errorf("clear %s: %w", dir, err)
	}
	defer d.Close()
	st, err := lstatAt(int(d.Fd()), ".")
	if err != nil {
		return fmt.Errorf("clear %s: %w", dir, err)
	}
	if err := clearDir(d, fsOf(&st), dir); err != nil {
		return fmt.Errorf("clear %s: %w", dir, err)
	}
	return nil
}

// clearDir deletes what it may of the entries of d (at path p, for
// errors).
func clearDir(d *os.File, fs fsID, p string) error {
	names, err := readNames(d)
	if err != nil {
		return err
	}
	var errs []error
	dfd := int(d.Fd())
	for _, name := range names {
		err := clearEntry(dfd, fs, name, path.Join(p, name))
		if err != nil && !errors.Is(err, errKept) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// errKept marks a directory clearEntry left in place because something it
// must not delete is below it.
var errKept = errors.New("kept: holds a mount")

func clearEntry(dfd int, fs fsID, name, p string) error {
	st, err := lstatAt(dfd, name)
	if err != nil {
		return err
	}
	if foreign(&st, fs) {
		return errKept
	}
	if uint32(st.Mode)&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlinkat(dfd, name, 0); err != nil {
			return &os.PathError{Op: "unlink", Path: p, Err: err}
		}
		return nil
	}
	sub, err := openDir(dfd, name)
	if err != nil {
		return err
	}
	err = clearDir(sub, fs, p)
	sub.Close()
	if err != nil {
		return err
	}
	switch err := unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR); {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOTEMPTY):
		// A mount somewhere below was kept.
		return errKept
	default:
		return &os.PathError{Op: "rmdir", Path: p, Err: err}
	}
}
