package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// unpackInto unpacks entries into base/layer, with base/outside as a canary.
func unpackInto(t testing.TB, u unpacker, data []byte) (layer, base string, err error) {
	t.Helper()
	base = t.TempDir()
	layer = filepath.Join(base, "layer")
	if err := os.Mkdir(layer, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "outside"), []byte("canary"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = u.unpack(bg(), layer, bytes.NewReader(data))
	return layer, base, err
}

// assertConfined fails if anything but the layer and the canary exists in base.
func assertConfined(t testing.TB, base string) {
	t.Helper()
	entries, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "layer" && e.Name() != "outside" {
			t.Errorf("unpack escaped: %s created", e.Name())
		}
	}
	if b, err := os.ReadFile(filepath.Join(base, "outside")); err != nil || string(b) != "canary" {
		t.Errorf("canary changed: %q, %v", b, err)
	}
}

func TestUnpackRejectsEscapes(t *testing.T) {
	tests := []struct {
		name    string
		entries []tarEntry
	}{
		{"dot-dot file", []tarEntry{{name: "../outside", body: "pwned"}}},
		{"dot-dot inside path", []tarEntry{{name: "a/../../outside", body: "pwned"}}},
		{"write through absolute symlink", []tarEntry{
			{name: "evil", typ: tar.TypeSymlink, link: "/"},
			{name: "evil/outside", body: "pwned"},
		}},
		{"write through escaping relative symlink", []tarEntry{
			{name: "evil", typ: tar.TypeSymlink, link: "../"},
			{name: "evil/outside", body: "pwned"},
		}},
		{"write through symlinked parent dir", []tarEntry{
			{name: "d", typ: tar.TypeSymlink, link: "/tmp"},
			{name: "d/x/y", body: "pwned"},
		}},
		{"hardlink to outside", []tarEntry{{name: "h", typ: tar.TypeLink, link: "../outside"}}},
		{"hardlink through absolute symlink", []tarEntry{
			{name: "s", typ: tar.TypeSymlink, link: "/"},
			{name: "h", typ: tar.TypeLink, link: "s/etc/passwd"},
		}},
		{"opaque marker through symlink", []tarEntry{
			{name: "s", typ: tar.TypeSymlink, link: "/"},
			{name: "s/.wh..wh..opq"},
		}},
		{"whiteout through symlink", []tarEntry{
			{name: "s", typ: tar.TypeSymlink, link: ".."},
			{name: "s/.wh.outside"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, base, err := unpackInto(t, newUnpacker(), tarBytes(t, tc.entries))
			if !errors.Is(err, ErrInvalidLayer) {
				t.Errorf("unpack = %v, want ErrInvalidLayer", err)
			}
			assertConfined(t, base)
		})
	}
}

func TestUnpackContent(t *testing.T) {
	u := newUnpacker()
	data := tarBytes(t, []tarEntry{
		{name: "./", typ: tar.TypeDir},
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/sh", body: "#!", mode: 0o4755},
		{name: "bin/ln", typ: tar.TypeLink, link: "/bin/sh"},
		{name: "lib", typ: tar.TypeSymlink, link: "/usr/lib"},
		{name: "ro/", typ: tar.TypeDir, mode: 0o555},
		{name: "ro/f", body: "x", xattrs: map[string]string{"user.note": "kept", "trusted.overlay.opaque": "y"}},
		{name: "implicit/parent/file", body: "deep"},
		{name: "dev/null", typ: tar.TypeChar},
		{name: "pipe", typ: tar.TypeFifo, mode: 0o600},
		{name: "replaced", body: "old"},
		{name: "replaced", body: "new"},
	})
	layer, base, err := unpackInto(t, u, data)
	// Unprivileged, TempDir's cleanup cannot empty a read-only directory.
	t.Cleanup(func() { os.Chmod(filepath.Join(layer, "ro"), 0o755) })
	if err != nil {
		t.Fatal(err)
	}
	assertConfined(t, base)
	check := func(p string, wantMode fs.FileMode) fs.FileInfo {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(layer, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			return nil
		}
		if wantMode != 0 && fi.Mode() != wantMode {
			t.Errorf("%s mode = %v, want %v", p, fi.Mode(), wantMode)
		}
		return fi
	}
	check("bin/sh", 0o755|fs.ModeSetuid)
	sh, ln := check("bin/sh", 0), check("bin/ln", 0)
	if sh != nil && ln != nil && !os.SameFile(sh, ln) {
		t.Error("bin/ln is not a hard link to bin/sh")
	}
	if target, _ := os.Readlink(filepath.Join(layer, "lib")); target != "/usr/lib" {
		t.Errorf("lib -> %q", target)
	}
	if fi := check("ro", fs.ModeDir|0o555); fi != nil && fi.ModTime().Unix() != 1700000000 {
		t.Errorf("ro mtime = %v", fi.ModTime())
	}
	check("implicit/parent/file", 0o644)
	check("pipe", fs.ModeNamedPipe|0o600)
	if _, err := os.Lstat(filepath.Join(layer, "dev/null")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("device node created: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(layer, "replaced")); string(b) != "new" {
		t.Errorf("replaced = %q", b)
	}
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(layer, "ro/f"), "user.note", buf); err != nil || string(buf[:n]) != "kept" {
		t.Errorf("user.note = %q, %v", buf[:n], err)
	}
	for _, x := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		if _, err := unix.Lgetxattr(filepath.Join(layer, "ro/f"), x, buf); err == nil {
			t.Errorf("%s copied from the tar", x)
		}
	}
}

func TestUnpackWhiteouts(t *testing.T) {
	u := newUnpacker()
	data := tarBytes(t, []tarEntry{
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/.wh.passwd"},
		{name: "opaque/", typ: tar.TypeDir},
		{name: "opaque/.wh..wh..opq"},
		{name: "opaque/kept", body: "k"},
		{name: "same/", typ: tar.TypeDir},
		{name: "same/file", body: "this layer's file wins"},
		{name: "same/.wh.file"},
		{name: "later/.wh.file"},
		{name: "later/file", body: "recreated after the whiteout"},
		{name: ".wh..wh.plnk"},
	})
	layer, _, err := unpackInto(t, u, data)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(layer, "etc/passwd"))
	if err != nil || !isWhiteout(fi) {
		t.Errorf("etc/passwd is not a 0:0 char device: %v %v", fi, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Rdev != 0 {
		t.Errorf("whiteout rdev = %v", fi.Sys())
	}
	if _, err := os.Lstat(filepath.Join(layer, "etc/.wh.passwd")); err == nil {
		t.Error(".wh.passwd kept verbatim")
	}
	if !isOpaque(filepath.Join(layer, "opaque")) {
		t.Errorf("opaque dir lacks %s", u.opaqueXattr)
	}
	for p, want := range map[string]string{"same/file": "this layer's file wins", "later/file": "recreated after the whiteout", "opaque/kept": "k"} {
		if b, err := os.ReadFile(filepath.Join(layer, p)); string(b) != want {
			t.Errorf("%s = %q, %v", p, b, err)
		}
	}
	entries, _ := os.ReadDir(layer)
	for _, e := range entries {
		if e.Name() == ".wh..wh.plnk" {
			t.Error("aufs metadata kept")
		}
	}
}

func TestUnpackOwnership(t *testing.T) {
	requireRoot(t)
	data := tarBytes(t, []tarEntry{
		{name: "home/", typ: tar.TypeDir, uid: 1000, gid: 1000},
		{name: "home/f", body: "x", uid: 1001, gid: 1002, mode: 0o2755},
		{name: "home/l", typ: tar.TypeSymlink, link: "f", uid: 1003, gid: 1004},
		{name: "cap", body: "x", xattrs: map[string]string{"security.capability": string([]byte{1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})}},
	})
	layer, _, err := unpackInto(t, newUnpacker(), data)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string][2]uint32{"home": {1000, 1000}, "home/f": {1001, 1002}, "home/l": {1003, 1004}} {
		fi, err := os.Lstat(filepath.Join(layer, p))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != want[0] || st.Gid != want[1] {
			t.Errorf("%s owner = %d:%d, want %v", p, st.Uid, st.Gid, want)
		}
	}
	if fi, _ := os.Lstat(filepath.Join(layer, "home/f")); fi.Mode()&fs.ModeSetgid == 0 {
		t.Error("setgid bit lost by chown")
	}
	buf := make([]byte, 64)
	if _, err := unix.Lgetxattr(filepath.Join(layer, "cap"), "security.capability", buf); err != nil {
		t.Errorf("security.capability: %v", err)
	}
}

func FuzzUnpack(f *testing.F) {
	seeds := [][]tarEntry{
		{{name: "a/b/c", body: "x"}, {name: "a/l", typ: tar.TypeSymlink, link: "/etc"}},
		{{name: "../x", body: "x"}},
		{{name: "s", typ: tar.TypeSymlink, link: "/"}, {name: "s/outside", body: "x"}},
		{{name: "h", typ: tar.TypeLink, link: "../outside"}},
		{{name: "d/", typ: tar.TypeDir}, {name: "d/.wh..wh..opq"}, {name: "d/.wh.x"}, {name: "d", body: "file replaces dir"}},
		{{name: "x", body: "1"}, {name: "y", typ: tar.TypeLink, link: "x"}, {name: "x/", typ: tar.TypeDir}},
	}
	for _, s := range seeds {
		f.Add(tarBytes(f, s))
	}
	u := newUnpacker()
	f.Fuzz(func(t *testing.T, data []byte) {
		_, base, _ := unpackInto(t, u, data)
		assertConfined(t, base)
	})
}
