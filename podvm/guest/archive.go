package guest

import (
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// entry is one file of a newc archive before it is written.
type entry struct {
	path   string      // absolute, clean
	mode   uint64      // Unix mode_t: type and permission bits
	data   io.ReaderAt // regular files only
	size   int64
	rmajor uint64 // device nodes only
	rminor uint64
}

func dirEntry(p string, perm uint64) entry {
	return entry{path: p, mode: cpio.S_IFDIR | perm}
}

func fileEntry(p string, perm uint64, data io.ReaderAt, size int64) entry {
	return entry{path: p, mode: cpio.S_IFREG | perm, data: data, size: size}
}

func charDevEntry(p string, perm, major, minor uint64) entry {
	return entry{path: p, mode: cpio.S_IFCHR | perm, rmajor: major, rminor: minor}
}

// validArchivePath reports whether p is a path we are willing to put in an
// archive: absolute, clean, not the root itself. The kernel unpacker would
// happily follow "..", so nothing unclean may reach it.
func validArchivePath(p string) bool {
	return strings.HasPrefix(p, "/") && p != "/" && path.Clean(p) == p
}

// writeArchive writes entries as a newc archive with a trailer. Missing
// parent directories are added (mode 0755), because the kernel's unpacker
// does not create them and silently drops a file whose directory does not
// exist yet. Entries are written sorted by path (a parent sorts before its
// children), with zero mtime and owner and sequential inode numbers, so the
// same input always gives the same bytes.
func writeArchive(w io.Writer, entries []entry) error {
	byPath := make(map[string]entry, len(entries))
	for _, e := range entries {
		if !validArchivePath(e.path) {
			return fmt.Errorf("archive entry %q: path must be absolute and clean", e.path)
		}
		if _, dup := byPath[e.path]; dup {
			return fmt.Errorf("archive entry %q: listed twice", e.path)
		}
		byPath[e.path] = e
	}
	for _, e := range entries {
		for d := path.Dir(e.path); d != "/"; d = path.Dir(d) {
			p, ok := byPath[d]
			if !ok {
				byPath[d] = dirEntry(d, 0o755)
				continue
			}
			if p.mode&cpio.S_IFMT != cpio.S_IFDIR {
				return fmt.Errorf("archive entry %q: parent %q is not a directory", e.path, d)
			}
		}
	}
	rw := cpio.Newc.Writer(w)
	for i, p := range slices.Sorted(maps.Keys(byPath)) {
		e := byPath[p]
		info := cpio.Info{
			Ino:    uint64(i + 1),
			Mode:   e.mode,
			NLink:  1,
			Rmajor: e.rmajor,
			Rminor: e.rminor,
			// The writer strips the leading slash; the kernel takes names
			// relative to the root either way.
			Name: strings.TrimPrefix(p, "/"),
		}
		rec := cpio.Record{Info: info}
		switch e.mode & cpio.S_IFMT {
		case cpio.S_IFDIR:
			rec.NLink = 2
		case cpio.S_IFREG:
			rec.ReaderAt = e.data
			rec.FileSize = uint64(e.size)
		}
		if err := rw.WriteRecord(rec); err != nil {
			return fmt.Errorf("write archive entry %s: %w", p, err)
		}
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return fmt.Errorf("write archive trailer: %w", err)
	}
	return nil
}
