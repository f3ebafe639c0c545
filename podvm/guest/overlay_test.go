package guest

import (
	"bytes"
	"compress/gzip"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

func TestWriteOverlayRoundTrip(t *testing.T) {
	files := []File{
		{Path: "/run/podvisor/keys/session", Mode: 0o400, Data: []byte("secret")},
		{Path: "/run/podvisor/keys", Mode: fs.ModeDir | 0o700},
		{Path: "/etc/podvisor/empty", Mode: 0o644},
		{Path: "/usr/bin/tool", Mode: fs.ModeSetuid | 0o755, Data: []byte("x")},
	}
	var buf bytes.Buffer
	if err := WriteOverlay(&buf, files); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("overlay is %d bytes, not a multiple of 4", buf.Len())
	}
	records, n, err := readNewc(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if n != buf.Len() {
		t.Errorf("archive ends at %d of %d bytes", n, buf.Len())
	}
	want := []struct {
		name string
		mode uint64
		data string
	}{
		{"etc", cpio.S_IFDIR | 0o755, ""},
		{"etc/podvisor", cpio.S_IFDIR | 0o755, ""},
		{"etc/podvisor/empty", cpio.S_IFREG | 0o644, ""},
		{"run", cpio.S_IFDIR | 0o755, ""},
		{"run/podvisor", cpio.S_IFDIR | 0o755, ""},
		{"run/podvisor/keys", cpio.S_IFDIR | 0o700, ""},
		{"run/podvisor/keys/session", cpio.S_IFREG | 0o400, "secret"},
		{"usr", cpio.S_IFDIR | 0o755, ""},
		{"usr/bin", cpio.S_IFDIR | 0o755, ""},
		{"usr/bin/tool", cpio.S_IFREG | cpio.S_ISUID | 0o755, "x"},
	}
	if len(records) != len(want) {
		t.Fatalf("got %d records, want %d: %v", len(records), len(want), records)
	}
	for i, w := range want {
		r := records[i]
		if r.Name != w.name || r.Mode != w.mode || string(r.data) != w.data {
			t.Errorf("record %d = %s %#o %q, want %s %#o %q", i, r.Name, r.Mode, r.data, w.name, w.mode, w.data)
		}
	}
}

func TestWriteOverlayEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteOverlay(&buf, nil); err != nil {
		t.Fatal(err)
	}
	records, n, err := readNewc(buf.Bytes())
	if err != nil || len(records) != 0 || n != buf.Len() {
		t.Fatalf("empty overlay: %d records, %d of %d bytes, err %v", len(records), n, buf.Len(), err)
	}
}

func TestWriteOverlayRejects(t *testing.T) {
	tests := []struct {
		name  string
		files []File
	}{
		{"relative path", []File{{Path: "run/x", Mode: 0o600}}},
		{"dot-dot", []File{{Path: "/run/../etc/x", Mode: 0o600}}},
		{"trailing slash", []File{{Path: "/run/x/", Mode: 0o600}}},
		{"root", []File{{Path: "/", Mode: fs.ModeDir | 0o755}}},
		{"duplicate", []File{{Path: "/a", Mode: 0o600}, {Path: "/a", Mode: 0o600}}},
		{"symlink", []File{{Path: "/a", Mode: fs.ModeSymlink | 0o777, Data: []byte("/etc")}}},
		{"device", []File{{Path: "/a", Mode: fs.ModeDevice | 0o600}}},
		{"directory with data", []File{{Path: "/a", Mode: fs.ModeDir | 0o755, Data: []byte("x")}}},
		{"file under a file", []File{{Path: "/a", Mode: 0o600}, {Path: "/a/b", Mode: 0o600}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteOverlay(&buf, tc.files); err == nil {
				t.Fatal("WriteOverlay succeeded, want an error")
			}
		})
	}
}

// TestComposeInitramfs appends an overlay to gzip bases of every length
// modulo 4 and unpacks the result the way the kernel does: the overlay must
// be found (so it starts aligned) and must win over the base.
func TestComposeInitramfs(t *testing.T) {
	k := newFakeKernel(t)
	spec := k.baseSpec(t, "fuse")
	dir := t.TempDir()
	residues := map[int]bool{}
	// The agent's size changes the compressed length; try sizes until every
	// residue mod 4 has been covered.
	for i := 0; len(residues) < 4 && i < 200; i++ {
		writeFile(t, k.agent, strings.Repeat("agent", i)+string(rune('a'+i%26)))
		var buf bytes.Buffer
		if err := WriteBaseInitramfs(&buf, spec); err != nil {
			t.Fatal(err)
		}
		r := buf.Len() % 4
		if residues[r] {
			continue
		}
		residues[r] = true
		base := filepath.Join(dir, "base.img")
		if err := os.WriteFile(base, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, "vm.img")
		files := []File{
			{Path: "/run/podvisor/keys/test", Mode: 0o400, Data: []byte("key material")},
			{Path: "/init", Mode: 0o755, Data: []byte("replaced")},
		}
		if err := ComposeInitramfs(base, dst, files); err != nil {
			t.Fatal(err)
		}
		out, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(out, buf.Bytes()) {
			t.Fatalf("residue %d: composed image does not start with the base", r)
		}
		got := mustUnpackLikeKernel(t, out)
		if f, ok := got["run/podvisor/keys/test"]; !ok || string(f.data) != "key material" || f.Mode != cpio.S_IFREG|0o400 {
			t.Errorf("residue %d: overlay file = %+v, present %v", r, f, ok)
		}
		if string(got["init"].data) != "replaced" {
			t.Errorf("residue %d: overlay did not replace /init: %q", r, got["init"].data)
		}
		if _, ok := got["dev/console"]; !ok {
			t.Errorf("residue %d: base entries lost", r)
		}
		fi, err := os.Stat(dst)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("composed image mode %v, want 0600", fi.Mode())
		}
	}
	if len(residues) < 4 {
		t.Fatalf("covered only base lengths %v mod 4", residues)
	}
}

// TestUnpackLikeKernelNeedsAlignment checks the test's model of the kernel:
// without padding an overlay after an odd-length gzip base is rejected, as
// the real kernel does ("invalid magic at start of compressed archive").
func TestUnpackLikeKernelNeedsAlignment(t *testing.T) {
	var base bytes.Buffer
	for i := 0; ; i++ {
		base.Reset()
		zw := gzip.NewWriter(&base)
		if err := writeArchive(zw, []entry{dirEntry("/d"+strings.Repeat("x", i), 0o755)}); err != nil {
			t.Fatal(err)
		}
		zw.Close()
		if base.Len()%4 != 0 {
			break
		}
	}
	var overlay bytes.Buffer
	if err := WriteOverlay(&overlay, []File{{Path: "/k", Mode: 0o400, Data: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	unaligned := append(bytes.Clone(base.Bytes()), overlay.Bytes()...)
	if _, err := unpackLikeKernel(unaligned); err == nil {
		t.Fatal("unaligned overlay unpacked; the kernel would reject it")
	}
	aligned := append(bytes.Clone(base.Bytes()), make([]byte, alignPad(int64(base.Len())))...)
	aligned = append(aligned, overlay.Bytes()...)
	if got := mustUnpackLikeKernel(t, aligned); string(got["k"].data) != "v" {
		t.Fatalf("aligned overlay not unpacked: %v", got)
	}
}

func TestComposeInitramfsReplacesDst(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.img")
	var buf bytes.Buffer
	if err := WriteOverlay(&buf, []File{{Path: "/a", Mode: 0o644}}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// A symlink at dst must be replaced, not followed.
	victim := filepath.Join(dir, "victim")
	writeFile(t, victim, "untouched")
	dst := filepath.Join(dir, "vm.img")
	if err := os.Symlink(victim, dst); err != nil {
		t.Fatal(err)
	}
	if err := ComposeInitramfs(base, dst, []File{{Path: "/b", Mode: 0o600}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "untouched" {
		t.Errorf("symlink target was written: %q", b)
	}
	fi, err := os.Lstat(dst)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dst = %v, %v; want a regular 0600 file", fi, err)
	}
	got := mustUnpackLikeKernel(t, mustRead(t, dst))
	if _, ok := got["a"]; !ok {
		t.Error("base entry missing")
	}
	if _, ok := got["b"]; !ok {
		t.Error("overlay entry missing")
	}
	// A failed compose leaves no temporary file behind.
	if err := ComposeInitramfs(base, dst, []File{{Path: "bad", Mode: 0o600}}); err == nil {
		t.Fatal("compose with a bad path succeeded")
	}
	if err := ComposeInitramfs(filepath.Join(dir, "missing"), dst, nil); err == nil {
		t.Fatal("compose from a missing base succeeded")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
