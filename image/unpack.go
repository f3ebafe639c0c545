package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// OCI whiteout names (image-spec layer.md).
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	// whiteoutMeta prefixes aufs bookkeeping entries, which carry no content.
	whiteoutMeta = ".wh..wh."
)

// unpacker turns an OCI layer tar into an overlayfs lower directory: OCI
// whiteouts become 0:0 character devices, opaque markers an xattr.
//
// Every path is resolved through an os.Root, which refuses to leave the layer
// directory (via "..", absolute or escaping symlinks); the final component is
// then handled with *at system calls on its parent's descriptor that never
// follow it. Device nodes are not created; only user.* and
// security.capability xattrs are kept (trusted.overlay.* from a tar would let
// an image forge whiteouts).
type unpacker struct {
	// chown: only root can give files their recorded owners (and set
	// security.capability).
	chown bool
	// opaqueXattr: trusted.overlay.opaque for overlays mounted by root,
	// user.overlay.opaque for unprivileged ("userxattr") overlays.
	opaqueXattr string
}

func newUnpacker() unpacker {
	if os.Geteuid() == 0 {
		return unpacker{chown: true, opaqueXattr: "trusted.overlay.opaque"}
	}
	return unpacker{opaqueXattr: "user.overlay.opaque"}
}

// dirMeta is applied after the whole layer is written: writing into a
// directory changes its mtime and a read-only mode would block the writes.
type dirMeta struct {
	name string
	hdr  *tar.Header
}

// unpack writes the tar stream r into dir, which must exist.
func (u unpacker) unpack(ctx context.Context, dir string, r io.Reader) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	var dirs []dirMeta
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: read tar: %w", ErrInvalidLayer, err)
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return err
		}
		if name == "." {
			continue // the layer root belongs to the store
		}
		if err := u.entry(root, name, hdr, tr, &dirs); err != nil {
			return fmt.Errorf("%w: entry %q: %w", ErrInvalidLayer, hdr.Name, err)
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if err := u.finishDir(root, d.name, d.hdr); err != nil {
			return fmt.Errorf("%w: entry %q: %w", ErrInvalidLayer, d.hdr.Name, err)
		}
	}
	return nil
}

// cleanName turns a tar entry name into a path relative to the layer root.
// Names are archive-relative even when written absolute; ".." is refused
// outright rather than clamped, as no honest layer contains it.
func cleanName(name string) (string, error) {
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: entry %q contains ..", ErrInvalidLayer, name)
		}
	}
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: entry %q contains NUL", ErrInvalidLayer, name)
	}
	p := strings.TrimPrefix(path.Clean("/"+name), "/")
	if p == "" {
		return ".", nil
	}
	return p, nil
}

func (u unpacker) entry(root *os.Root, name string, hdr *tar.Header, r io.Reader, dirs *[]dirMeta) error {
	parent, base := path.Split(name)
	if parent == "" {
		parent = "."
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(root, parent, base)
	}
	if hdr.Uid < 0 || hdr.Gid < 0 {
		return errors.New("negative owner")
	}
	return withParent(root, parent, func(pfd int) error {
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := u.mkdir(root, pfd, name, base); err != nil {
				return err
			}
			*dirs = append(*dirs, dirMeta{name: name, hdr: hdr})
			return nil
		case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old archives still use TypeRegA
			return u.file(root, pfd, name, base, hdr, r)
		case tar.TypeSymlink:
			return u.symlink(root, pfd, name, base, hdr)
		case tar.TypeLink:
			return u.hardlink(root, pfd, name, base, hdr)
		case tar.TypeFifo:
			if err := removeExisting(root, pfd, name, base); err != nil {
				return err
			}
			if err := unix.Mknodat(pfd, base, unix.S_IFIFO|0o600, 0); err != nil {
				return err
			}
			return u.attrs(pfd, base, hdr)
		case tar.TypeChar, tar.TypeBlock:
			// A device node in a rootfs is a way into the guest's devices;
			// no image needs one (the runtime populates /dev).
			klog.V(2).InfoS("Skipping device node in layer", "entry", hdr.Name)
			return nil
		default:
			klog.V(2).InfoS("Skipping tar entry of unsupported type", "entry", hdr.Name, "type", hdr.Typeflag)
			return nil
		}
	})
}

func (u unpacker) mkdir(root *os.Root, pfd int, name, base string) error {
	var st unix.Stat_t
	err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return nil // tar may repeat a directory; its metadata is applied later
	}
	if err == nil {
		if err := removeExisting(root, pfd, name, base); err != nil {
			return err
		}
	}
	return unix.Mkdirat(pfd, base, 0o755)
}

func (u unpacker) file(root *os.Root, pfd int, name, base string, hdr *tar.Header, r io.Reader) error {
	if err := removeExisting(root, pfd, name, base); err != nil {
		return err
	}
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := u.fdAttrs(fd, hdr); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return setTimes(pfd, base, hdr)
}

func (u unpacker) symlink(root *os.Root, pfd int, name, base string, hdr *tar.Header) error {
	if err := removeExisting(root, pfd, name, base); err != nil {
		return err
	}
	// The target is stored as is: it is only ever resolved inside the guest,
	// and this unpacker never follows links it created.
	if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
		return err
	}
	if u.chown {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return setTimes(pfd, base, hdr)
}

func (u unpacker) hardlink(root *os.Root, pfd int, name, base string, hdr *tar.Header) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return err
	}
	if target == "." || target == name {
		return fmt.Errorf("hard link to %q", hdr.Linkname)
	}
	tparent, tbase := path.Split(target)
	if tparent == "" {
		tparent = "."
	}
	return withParent(root, tparent, func(tfd int) error {
		if err := removeExisting(root, pfd, name, base); err != nil {
			return err
		}
		// No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
		return unix.Linkat(tfd, tbase, pfd, base, 0)
	})
}

// whiteout records an OCI whiteout as overlayfs expects it.
func (u unpacker) whiteout(root *os.Root, parent, base string) error {
	if base == whiteoutOpaque {
		if err := root.MkdirAll(parent, 0o755); err != nil {
			return err
		}
		d, err := root.OpenFile(parent, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		defer d.Close()
		return unix.Fsetxattr(int(d.Fd()), u.opaqueXattr, []byte("y"), 0)
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil
	}
	target := strings.TrimPrefix(base, whiteoutPrefix)
	if target == "" || target == "." {
		return fmt.Errorf("whiteout %q names nothing", base)
	}
	return withParent(root, parent, func(pfd int) error {
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, target, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
			// A whiteout hides lower layers only; an entry of this layer wins.
			return nil
		}
		return unix.Mknodat(pfd, target, unix.S_IFCHR, 0)
	})
}

// withParent makes sure directory parent exists inside root and calls fn with
// a descriptor of it.
func withParent(root *os.Root, parent string, fn func(pfd int) error) error {
	if parent != "." {
		if err := root.MkdirAll(parent, 0o755); err != nil {
			return err
		}
	}
	d, err := root.OpenFile(parent, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	return fn(int(d.Fd()))
}

// removeExisting clears the way for a new entry: in a tar, a later entry
// replaces an earlier one of the same name.
func removeExisting(root *os.Root, pfd int, name, base string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return root.RemoveAll(name)
	}
	return unix.Unlinkat(pfd, base, 0)
}

// finishDir applies a directory's owner, mode, xattrs and times.
func (u unpacker) finishDir(root *os.Root, name string, hdr *tar.Header) error {
	d, err := root.OpenFile(name, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	if err := u.fdAttrs(int(d.Fd()), hdr); err != nil {
		d.Close()
		return err
	}
	d.Close()
	parent, base := path.Split(name)
	if parent == "" {
		parent = "."
	}
	return withParent(root, parent, func(pfd int) error { return setTimes(pfd, base, hdr) })
}

// fdAttrs sets owner, then mode (chown clears set-id bits), then xattrs
// (chown also clears security.capability).
func (u unpacker) fdAttrs(fd int, hdr *tar.Header) error {
	if u.chown {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
		return err
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || !u.keepXattr(name) {
			continue
		}
		if err := unix.Fsetxattr(fd, name, []byte(v), 0); err != nil {
			return fmt.Errorf("xattr %s: %w", name, err)
		}
	}
	return nil
}

// attrs is fdAttrs for nodes that cannot be opened (fifos would block).
func (u unpacker) attrs(pfd int, base string, hdr *tar.Header) error {
	if u.chown {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	if err := unix.Fchmodat(pfd, base, uint32(hdr.Mode&0o7777), 0); err != nil {
		return err
	}
	return setTimes(pfd, base, hdr)
}

func (u unpacker) keepXattr(name string) bool {
	if strings.HasPrefix(name, "user.") {
		return !strings.HasPrefix(name, "user.overlay.")
	}
	return name == "security.capability" && u.chown
}

func setTimes(pfd int, base string, hdr *tar.Header) error {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	ts := []unix.Timespec{timespec(atime), timespec(hdr.ModTime)}
	return unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.NsecToTimespec(t.UnixNano())
}
