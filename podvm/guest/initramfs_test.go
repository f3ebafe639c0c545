package guest

import (
	"bytes"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

const testKernelVersion = "6.1.0-test-amd64"

// fakeKernel lays out what an unpacked kernel package looks like after
// depmod: boot/vmlinuz-<ver> and lib/modules/<ver>/ with modules.dep and a
// .ko per line (each holding its own path, so contents can be checked).
type fakeKernel struct {
	root, moduleDir, agent string
}

func newFakeKernel(t *testing.T) fakeKernel {
	t.Helper()
	root := t.TempDir()
	k := fakeKernel{
		root:      root,
		moduleDir: filepath.Join(root, "lib", "modules", testKernelVersion),
		agent:     filepath.Join(t.TempDir(), "agent"),
	}
	writeFile(t, filepath.Join(root, "boot", "vmlinuz-"+testKernelVersion), "fake kernel image")
	dep := strings.Join([]string{
		"kernel/drivers/virtio/virtio_ring.ko:",
		"kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko",
		"kernel/fs/fuse/fuse.ko:",
		"kernel/fs/fuse/virtiofs.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko kernel/fs/fuse/fuse.ko",
		"kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
		"kernel/fs/overlayfs/overlay.ko:",
		"kernel/fs/unused/unused.ko:",
	}, "\n") + "\n"
	writeFile(t, filepath.Join(k.moduleDir, "modules.dep"), dep)
	for _, line := range strings.Split(strings.TrimSpace(dep), "\n") {
		p, _, _ := strings.Cut(line, ":")
		writeFile(t, filepath.Join(k.moduleDir, p), "module "+p)
	}
	writeFile(t, k.agent, "#!agent binary")
	return k
}

func (k fakeKernel) baseSpec(t *testing.T, modules ...string) BaseSpec {
	t.Helper()
	ix, err := LoadModuleIndex(k.moduleDir)
	if err != nil {
		t.Fatal(err)
	}
	mods, err := ix.Resolve(modules)
	if err != nil {
		t.Fatal(err)
	}
	return BaseSpec{Agent: k.agent, ModuleDir: k.moduleDir, KernelVersion: testKernelVersion, Modules: mods}
}

func writeBase(t *testing.T, spec BaseSpec) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteBaseInitramfs(&buf, spec); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBaseInitramfsRoundTrip(t *testing.T) {
	k := newFakeKernel(t)
	img := writeBase(t, k.baseSpec(t, "virtiofs", "virtio-rng", "overlay"))

	plain, n, err := gunzip(img)
	if err != nil {
		t.Fatalf("base image is not gzip: %v", err)
	}
	if n != len(img) {
		t.Errorf("gzip member is %d bytes of %d: trailing data", n, len(img))
	}
	records, size, err := readNewc(plain)
	if err != nil {
		t.Fatal(err)
	}
	if size != len(plain) {
		t.Errorf("archive is %d bytes, trailer ends at %d", len(plain), size)
	}

	modDir := "lib/modules/" + testKernelVersion
	loadOrder := []string{
		modDir + "/kernel/drivers/virtio/virtio_ring.ko",
		modDir + "/kernel/drivers/virtio/virtio.ko",
		modDir + "/kernel/fs/fuse/fuse.ko",
		modDir + "/kernel/fs/fuse/virtiofs.ko",
		modDir + "/kernel/drivers/char/hw_random/virtio-rng.ko",
		modDir + "/kernel/fs/overlayfs/overlay.ko",
	}
	type want struct {
		mode         uint64
		rmajor, rmin uint64
		data         string
	}
	wants := map[string]want{
		"init":          {mode: cpio.S_IFREG | 0o755, data: "#!agent binary"},
		"dev":           {mode: cpio.S_IFDIR | 0o755},
		"dev/console":   {mode: cpio.S_IFCHR | 0o600, rmajor: 5, rmin: 1},
		"dev/null":      {mode: cpio.S_IFCHR | 0o666, rmajor: 1, rmin: 3},
		"etc":           {mode: cpio.S_IFDIR | 0o755},
		"etc/podvisor":  {mode: cpio.S_IFDIR | 0o755},
		"proc":          {mode: cpio.S_IFDIR | 0o555},
		"sys":           {mode: cpio.S_IFDIR | 0o555},
		"sys/fs":        {mode: cpio.S_IFDIR | 0o755},
		"sys/fs/cgroup": {mode: cpio.S_IFDIR | 0o555},
		"run":           {mode: cpio.S_IFDIR | 0o755},
		"tmp":           {mode: cpio.S_IFDIR | 0o1777},
		"etc/podvisor/modules": {mode: cpio.S_IFREG | 0o644,
			data: "/" + strings.Join(loadOrder, "\n/") + "\n"},
	}
	for _, p := range loadOrder {
		wants[p] = want{mode: cpio.S_IFREG | 0o644, data: "module " + strings.TrimPrefix(p, modDir+"/")}
	}
	// Every parent directory of every entry is in the archive.
	for p := range wants {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if _, ok := wants[d]; !ok {
				wants[d] = want{mode: cpio.S_IFDIR | 0o755}
			}
		}
	}

	var names []string
	seen := map[string]bool{}
	for _, r := range records {
		names = append(names, r.Name)
		if seen[r.Name] {
			t.Errorf("%s: listed twice", r.Name)
		}
		seen[r.Name] = true
		w, ok := wants[r.Name]
		if !ok {
			t.Errorf("unexpected entry %s (%#o)", r.Name, r.Mode)
			continue
		}
		if r.Mode != w.mode || r.Rmajor != w.rmajor || r.Rminor != w.rmin {
			t.Errorf("%s: mode %#o dev %d:%d, want %#o dev %d:%d", r.Name, r.Mode, r.Rmajor, r.Rminor, w.mode, w.rmajor, w.rmin)
		}
		if string(r.data) != w.data {
			t.Errorf("%s: content %q, want %q", r.Name, r.data, w.data)
		}
		if r.UID != 0 || r.GID != 0 || r.MTime != 0 {
			t.Errorf("%s: uid %d gid %d mtime %d, want all 0", r.Name, r.UID, r.GID, r.MTime)
		}
		if r.Ino == 0 {
			t.Errorf("%s: inode 0", r.Name)
		}
	}
	for p := range wants {
		if !seen[p] {
			t.Errorf("missing entry %s", p)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("entries are not sorted: %q", names)
	}
}

func TestBaseInitramfsIsReproducible(t *testing.T) {
	k := newFakeKernel(t)
	spec := k.baseSpec(t, "virtiofs", "overlay")
	a := writeBase(t, spec)
	b := writeBase(t, spec)
	if !bytes.Equal(a, b) {
		t.Fatal("two builds from the same inputs differ")
	}
}

func TestBaseInitramfsErrors(t *testing.T) {
	k := newFakeKernel(t)
	tests := []struct {
		name    string
		edit    func(*BaseSpec)
		errText string
	}{
		{"missing agent", func(s *BaseSpec) { s.Agent = filepath.Join(k.root, "nope") }, "agent"},
		{"kernel version not a name", func(s *BaseSpec) { s.KernelVersion = "../6.1" }, "plain name"},
		{"no kernel version", func(s *BaseSpec) { s.KernelVersion = "" }, "plain name"},
		{"agent is a directory", func(s *BaseSpec) { s.Agent = k.root }, "not a regular file"},
		{"missing module file", func(s *BaseSpec) {
			s.Modules = append(s.Modules, Module{Name: "ghost", Path: "kernel/ghost.ko"})
		}, "ghost"},
		{"compressed module", func(s *BaseSpec) {
			s.Modules = append(s.Modules, Module{Name: "z", Path: "kernel/z.ko.xz"})
		}, "not an uncompressed .ko"},
		{"module path escapes", func(s *BaseSpec) {
			s.Modules = append(s.Modules, Module{Name: "evil", Path: "../../../evil.ko"})
		}, "escapes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := k.baseSpec(t, "fuse")
			tc.edit(&spec)
			var buf bytes.Buffer
			err := WriteBaseInitramfs(&buf, spec)
			if err == nil || !strings.Contains(err.Error(), tc.errText) {
				t.Fatalf("error = %v, want one mentioning %q", err, tc.errText)
			}
		})
	}
}
