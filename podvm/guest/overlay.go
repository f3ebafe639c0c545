package guest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/u-root/u-root/pkg/cpio"
)

// File is one small file (or directory) of a per-VM overlay archive.
type File struct {
	// Path is absolute and clean, e.g. "/run/podvisor/keys/session".
	Path string
	// Mode holds the permission bits; fs.ModeDir makes a directory (Data
	// must then be empty). Other file types are refused.
	//
	// Parent directories not listed are emitted with mode 0755. The kernel
	// applies an archive's directory mode even to a directory that already
	// exists, so list a parent explicitly when it must keep another mode
	// (e.g. /tmp, which is 01777 in the base image).
	Mode fs.FileMode
	Data []byte
}

// overlayModeBits are the fs.FileMode bits that map onto mode_t bits.
const overlayModeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// WriteOverlay writes files to dst as an uncompressed newc archive with a
// trailer, meant to be appended to a base initramfs: the kernel unpacks
// concatenated archives in order, so these entries are added to (or replace)
// the base image's. Use [ComposeInitramfs] to do the appending; it takes
// care of the alignment the kernel requires.
func WriteOverlay(dst io.Writer, files []File) error {
	entries := make([]entry, 0, len(files))
	for _, f := range files {
		if f.Mode&^(overlayModeBits|fs.ModeDir) != 0 {
			return fmt.Errorf("overlay file %q: mode %v: only regular files and directories are allowed", f.Path, f.Mode)
		}
		perm := unixPerm(f.Mode)
		if f.Mode.IsDir() {
			if len(f.Data) > 0 {
				return fmt.Errorf("overlay file %q: a directory cannot have data", f.Path)
			}
			entries = append(entries, dirEntry(f.Path, perm))
			continue
		}
		entries = append(entries, fileEntry(f.Path, perm, bytes.NewReader(f.Data), int64(len(f.Data))))
	}
	bw := bufio.NewWriter(dst)
	if err := writeArchive(bw, entries); err != nil {
		return fmt.Errorf("write overlay: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write overlay: %w", err)
	}
	return nil
}

func unixPerm(m fs.FileMode) uint64 {
	p := uint64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= cpio.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		p |= cpio.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		p |= cpio.S_ISVTX
	}
	return p
}

// ComposeInitramfs writes the per-VM initramfs dst: the base image followed
// by an overlay archive of files. dst is created with mode 0600 and replaced
// atomically (write to a temporary file in the same directory, then
// rename), so a VMM never sees a partial image and a symlink planted at dst
// is replaced rather than followed.
//
// The base is copied with io.Copy, which the os package turns into
// copy_file_range (or sendfile) between files, so the bytes need not pass
// through user space.
//
// The kernel only recognises an appended uncompressed archive whose header
// starts at an offset that is a multiple of 4, counted from the end of the
// previous archive's compressed stream and across any zero bytes in
// between (init/initramfs.c: unpack_to_rootfs skips NUL bytes and checks
// the offset before treating a '0' as the newc magic). The gzip base can
// have any length, so zero padding is added to make the overlay start
// aligned.
func ComposeInitramfs(base, dst string, files []File) (retErr error) {
	// The overlay is small: build it first, so invalid files fail before
	// anything is copied or created.
	var overlay bytes.Buffer
	if err := WriteOverlay(&overlay, files); err != nil {
		return fmt.Errorf("compose initramfs: %w", err)
	}
	src, err := os.Open(base)
	if err != nil {
		return fmt.Errorf("compose initramfs: %w", err)
	}
	defer src.Close()

	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return fmt.Errorf("compose initramfs: %w", err)
	}
	defer func() {
		if retErr != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// CreateTemp already uses 0600; say so explicitly, since the file may
	// hold key material.
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("compose initramfs: %w", err)
	}
	n, err := io.Copy(tmp, src)
	if err != nil {
		return fmt.Errorf("compose initramfs: copy base %s: %w", base, err)
	}
	if pad := alignPad(n); pad > 0 {
		if _, err := tmp.Write(make([]byte, pad)); err != nil {
			return fmt.Errorf("compose initramfs: %w", err)
		}
	}
	if _, err := tmp.Write(overlay.Bytes()); err != nil {
		return fmt.Errorf("compose initramfs: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("compose initramfs: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("compose initramfs: %w", err)
	}
	return nil
}

// alignPad returns how many zero bytes bring n up to a multiple of 4.
func alignPad(n int64) int64 {
	return (4 - n%4) % 4
}
