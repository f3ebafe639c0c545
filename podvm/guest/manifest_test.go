package guest

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// buildTestImage builds a complete image from a fake kernel into a fresh
// directory and returns it loaded.
func buildTestImage(t *testing.T) *Image {
	t.Helper()
	im, _ := buildTestImageFrom(t)
	return im
}

func buildTestImageFrom(t *testing.T) (*Image, fakeKernel) {
	t.Helper()
	k := newFakeKernel(t)
	out := filepath.Join(t.TempDir(), "guest")
	if _, err := Build(BuildConfig{
		KernelRoot:    k.root,
		KernelVersion: testKernelVersion,
		KernelPackage: "linux-image-test=1",
		Agent:         k.agent,
		Modules:       []string{"virtiofs", "overlay"},
		OutDir:        out,
	}); err != nil {
		t.Fatal(err)
	}
	im, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	return im, k
}

func TestBuildLoadVerify(t *testing.T) {
	im, k := buildTestImageFrom(t)
	m := im.Manifest
	if m.Kernel.File != KernelFile || m.Initramfs.File != InitramfsFile {
		t.Errorf("files = %q, %q", m.Kernel.File, m.Initramfs.File)
	}
	if m.Kernel.Version != testKernelVersion || m.Kernel.Package != "linux-image-test=1" {
		t.Errorf("kernel = %+v", m.Kernel)
	}
	if got, want := strings.Join(m.Modules, " "), "virtio_ring virtio fuse virtiofs overlay"; got != want {
		t.Errorf("modules = %q, want %q", got, want)
	}
	if agent, err := hashFile(k.agent); err != nil || m.Agent.SHA256 != agent {
		t.Errorf("agent sha256 = %q, want %q (%v)", m.Agent.SHA256, agent, err)
	}
	if err := im.Verify(); err != nil {
		t.Fatalf("Verify of a fresh build: %v", err)
	}
	if b := mustRead(t, im.KernelPath()); string(b) != "fake kernel image" {
		t.Errorf("kernel content %q", b)
	}
	files := mustUnpackLikeKernel(t, mustRead(t, im.InitramfsPath()))
	if string(files["init"].data) != "#!agent binary" {
		t.Errorf("init = %q", files["init"].data)
	}
}

func TestVerifyDetectsFlippedByte(t *testing.T) {
	for _, which := range []string{KernelFile, InitramfsFile} {
		t.Run(which, func(t *testing.T) {
			im := buildTestImage(t)
			p := filepath.Join(im.Dir, which)
			b := mustRead(t, p)
			b[len(b)/2] ^= 0x01
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			err := im.Verify()
			if !errors.Is(err, ErrDigestMismatch) {
				t.Fatalf("Verify = %v, want ErrDigestMismatch", err)
			}
			want := im.Manifest.Kernel.SHA256
			other := im.Manifest.Initramfs.SHA256
			if which == InitramfsFile {
				want, other = other, want
			}
			got, _ := hashFile(p)
			for _, s := range []string{p, want, got} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			// Only the modified file is reported.
			if strings.Contains(err.Error(), other) {
				t.Errorf("error %q mentions the intact file's digest", err)
			}
		})
	}
}

func TestVerifyReportsBothFiles(t *testing.T) {
	im := buildTestImage(t)
	for _, f := range []string{im.KernelPath(), im.InitramfsPath()} {
		if err := os.WriteFile(f, []byte("tampered"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err := im.Verify()
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Verify = %v, want ErrDigestMismatch", err)
	}
	for _, s := range []string{KernelFile, InitramfsFile} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
}

func TestVerifyMissingFile(t *testing.T) {
	im := buildTestImage(t)
	if err := os.Remove(im.KernelPath()); err != nil {
		t.Fatal(err)
	}
	err := im.Verify()
	if !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Verify = %v, want ErrNotExist", err)
	}
}

func TestLoadErrors(t *testing.T) {
	valid := func() map[string]any {
		d := strings.Repeat("ab", 32)
		return map[string]any{
			"kernel":    map[string]any{"file": "vmlinuz", "sha256": d, "version": "6.1", "package": "p=1"},
			"initramfs": map[string]any{"file": "initramfs.img", "sha256": d},
			"agent":     map[string]any{"sha256": d},
			"modules":   []string{"fuse"},
		}
	}
	set := func(path string, v any) func(map[string]any) {
		return func(m map[string]any) {
			keys := strings.Split(path, ".")
			cur := m
			for _, k := range keys[:len(keys)-1] {
				cur = cur[k].(map[string]any)
			}
			cur[keys[len(keys)-1]] = v
		}
	}
	tests := []struct {
		name    string
		raw     string               // used as is when edit is nil
		edit    func(map[string]any) // applied to a valid manifest
		suffix  string               // appended to the encoded manifest
		errText string
	}{
		{name: "not JSON", raw: "{kernel", errText: "invalid character"},
		{name: "empty", raw: "", errText: "EOF"},
		{name: "trailing data", edit: func(map[string]any) {}, suffix: "{}", errText: "trailing data"},
		{name: "unknown field", edit: set("kernel.cmdline", "x"), errText: "unknown field"},
		{name: "wrong type", edit: set("modules", "fuse"), errText: "cannot unmarshal"},
		{name: "missing kernel file", edit: set("kernel.file", ""), errText: "kernel.file"},
		{name: "kernel path escapes", edit: set("kernel.file", "../../etc/shadow"), errText: "kernel.file"},
		{name: "initramfs absolute", edit: set("initramfs.file", "/boot/initrd"), errText: "initramfs.file"},
		{name: "manifest as image", edit: set("initramfs.file", "manifest.json"), errText: "initramfs.file"},
		{name: "same file twice", edit: set("initramfs.file", "vmlinuz"), errText: "same file"},
		{name: "short digest", edit: set("kernel.sha256", "abcd"), errText: "kernel.sha256"},
		{name: "uppercase digest", edit: set("initramfs.sha256", strings.Repeat("AB", 32)), errText: "initramfs.sha256"},
		{name: "missing agent digest", edit: set("agent.sha256", ""), errText: "agent.sha256"},
		{name: "missing version", edit: set("kernel.version", ""), errText: "kernel.version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			raw := tc.raw
			if tc.edit != nil {
				m := valid()
				tc.edit(m)
				b, err := json.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				raw = string(b) + tc.suffix
			}
			writeFile(t, filepath.Join(dir, ManifestFile), raw)
			_, err := Load(dir)
			if !errors.Is(err, ErrInvalidManifest) {
				t.Fatalf("Load = %v, want ErrInvalidManifest", err)
			}
			if !strings.Contains(err.Error(), tc.errText) {
				t.Errorf("error %q does not mention %q", err, tc.errText)
			}
		})
	}
	// The valid manifest itself loads.
	dir := t.TempDir()
	b, _ := json.Marshal(valid())
	writeFile(t, filepath.Join(dir, ManifestFile), string(b))
	if _, err := Load(dir); err != nil {
		t.Fatalf("valid manifest: %v", err)
	}
}

func TestLoadMissingOrHuge(t *testing.T) {
	if _, err := Load(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of an empty dir = %v, want ErrNotExist", err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ManifestFile), strings.Repeat(" ", maxManifestSize+1))
	if _, err := Load(dir); !errors.Is(err, ErrInvalidManifest) {
		t.Errorf("Load of an oversized manifest = %v, want ErrInvalidManifest", err)
	}
}

func TestBuildConfigErrors(t *testing.T) {
	k := newFakeKernel(t)
	good := BuildConfig{
		KernelRoot: k.root, KernelVersion: testKernelVersion, KernelPackage: "p=1",
		Agent: k.agent, OutDir: filepath.Join(t.TempDir(), "out"), Modules: []string{"fuse"},
	}
	tests := []struct {
		name    string
		edit    func(*BuildConfig)
		errText string
	}{
		{"no agent", func(c *BuildConfig) { c.Agent = "" }, "agent is not set"},
		{"bad version", func(c *BuildConfig) { c.KernelVersion = "../x" }, "not a plain name"},
		{"unknown module", func(c *BuildConfig) { c.Modules = []string{"nosuch"} }, "nosuch"},
		{"no kernel image", func(c *BuildConfig) { c.KernelRoot = t.TempDir() }, "modules.dep"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			_, err := Build(c)
			if err == nil || !strings.Contains(err.Error(), tc.errText) {
				t.Fatalf("Build = %v, want an error mentioning %q", err, tc.errText)
			}
			if _, err := os.Stat(filepath.Join(c.OutDir, ManifestFile)); err == nil {
				t.Error("a failed build left a manifest")
			}
		})
	}
}

// BenchmarkVerify hashes an image of realistic size: a 14 MiB kernel (the
// Debian cloud kernel) and a 24 MiB initramfs (modules plus a large agent).
func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	im := &Image{Dir: dir, Manifest: Manifest{
		Kernel:    KernelInfo{File: KernelFile},
		Initramfs: FileDigest{File: InitramfsFile},
	}}
	var total int64
	for _, f := range []struct {
		name   string
		size   int
		digest *string
	}{
		{KernelFile, 14 << 20, &im.Manifest.Kernel.SHA256},
		{InitramfsFile, 24 << 20, &im.Manifest.Initramfs.SHA256},
	} {
		data := make([]byte, f.size)
		rand.Read(data)
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
		d, err := hashFile(p)
		if err != nil {
			b.Fatal(err)
		}
		*f.digest = d
		total += int64(f.size)
	}
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		if err := im.Verify(); err != nil {
			b.Fatal(err)
		}
	}
}
