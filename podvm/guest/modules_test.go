package guest

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testModulesDep is shaped like a real depmod output: a module's line lists
// its whole dependency closure, not only direct dependencies.
const testModulesDep = `kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/fuse/fuse.ko:
kernel/fs/fuse/virtiofs.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko kernel/fs/fuse/fuse.ko
kernel/test/broken.ko: kernel/test/absent.ko
kernel/test/cyc_a.ko: kernel/test/cyc_b.ko
kernel/test/cyc_b.ko: kernel/test/cyc_c.ko
kernel/test/cyc_c.ko: kernel/test/cyc_a.ko
kernel/test/self.ko: kernel/test/self.ko
`

func TestResolve(t *testing.T) {
	ix, err := ParseModulesDep(strings.NewReader(testModulesDep))
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.addBuiltin(strings.NewReader("kernel/drivers/char/hw_random/rng-core.ko\n")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		request []string
		want    []string // module names in load order
		wantErr error
		errText string // must appear in the error
	}{
		{
			name:    "leaf module",
			request: []string{"fuse"},
			want:    []string{"fuse"},
		},
		{
			name:    "dependencies come first",
			request: []string{"virtio_pci"},
			want:    []string{"virtio_pci_modern_dev", "virtio_ring", "virtio", "virtio_pci"},
		},
		{
			name:    "shared dependencies loaded once",
			request: []string{"virtio_net", "virtiofs", "virtio_pci"},
			want: []string{
				"failover", "net_failover", "virtio_ring", "virtio", "virtio_net",
				"fuse", "virtiofs", "virtio_pci_modern_dev", "virtio_pci",
			},
		},
		{
			name:    "repeated request is deduplicated",
			request: []string{"fuse", "fuse", "virtiofs"},
			want:    []string{"fuse", "virtio_ring", "virtio", "virtiofs"},
		},
		{
			name:    "dash and underscore are the same name",
			request: []string{"virtio-rng"},
			want:    []string{"virtio_ring", "virtio", "virtio_rng"},
		},
		{
			name:    "built-in module is skipped",
			request: []string{"rng_core", "fuse"},
			want:    []string{"fuse"},
		},
		{
			name:    "empty request",
			request: nil,
			want:    nil,
		},
		{
			name:    "unknown module",
			request: []string{"fuse", "nosuch"},
			wantErr: ErrModuleNotFound,
			errText: "nosuch",
		},
		{
			name:    "missing dependency names its dependent",
			request: []string{"broken"},
			wantErr: ErrModuleNotFound,
			errText: "absent (needed by broken)",
		},
		{
			name:    "cycle",
			request: []string{"cyc_a"},
			wantErr: ErrModuleCycle,
			errText: "cyc_a -> cyc_b -> cyc_c -> cyc_a",
		},
		{
			name:    "cycle entered from the middle",
			request: []string{"cyc_b"},
			wantErr: ErrModuleCycle,
			errText: "cyc_b -> cyc_c -> cyc_a -> cyc_b",
		},
		{
			name:    "self dependency",
			request: []string{"self"},
			wantErr: ErrModuleCycle,
			errText: "self -> self",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mods, err := ix.Resolve(tc.request)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Resolve(%q) error = %v, want %v", tc.request, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.errText) {
					t.Errorf("error %q does not mention %q", err, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tc.request, err)
			}
			var got []string
			for _, m := range mods {
				got = append(got, m.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Resolve(%q) = %q, want %q", tc.request, got, tc.want)
			}
			checkLoadOrder(t, ix, mods)
		})
	}
}

// checkLoadOrder checks the invariant the agent relies on, independently of
// the exact order: every module comes after all of its dependencies.
func checkLoadOrder(t *testing.T, ix *ModuleIndex, mods []Module) {
	t.Helper()
	pos := map[string]int{}
	for i, m := range mods {
		if _, dup := pos[m.Name]; dup {
			t.Errorf("module %s listed twice", m.Name)
		}
		pos[m.Name] = i
		if want := ix.byName[m.Name].path; m.Path != want {
			t.Errorf("module %s path = %q, want %q", m.Name, m.Path, want)
		}
	}
	for i, m := range mods {
		for _, d := range ix.byName[m.Name].deps {
			if j, ok := pos[d]; !ok || j > i {
				t.Errorf("module %s (at %d) loads before its dependency %s", m.Name, i, d)
			}
		}
	}
}

func TestParseModulesDepErrors(t *testing.T) {
	tests := []struct {
		name, input, errText string
	}{
		{"no colon", "kernel/a.ko kernel/b.ko\n", "line 1"},
		{"empty module path", "kernel/a.ko:\n: kernel/a.ko\n", "line 2"},
		{"module listed twice", "kernel/a.ko:\nkernel/x/a.ko:\n", "listed twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseModulesDep(strings.NewReader(tc.input))
			if !errors.Is(err, ErrModulesDep) {
				t.Fatalf("error = %v, want ErrModulesDep", err)
			}
			if !strings.Contains(err.Error(), tc.errText) {
				t.Errorf("error %q does not mention %q", err, tc.errText)
			}
		})
	}
}

func TestParseModulesDepSkipsBlankAndComments(t *testing.T) {
	ix, err := ParseModulesDep(strings.NewReader("\n# comment\nkernel/a.ko:\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Resolve([]string{"a"}); err != nil {
		t.Fatal(err)
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/char/hw_random/virtio-rng.ko": "virtio_rng",
		"kernel/fs/fuse/fuse.ko.xz":                   "fuse",
		"virtio-rng":                                  "virtio_rng",
		"overlay":                                     "overlay",
	} {
		if got := ModuleName(in); got != want {
			t.Errorf("ModuleName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLoadModuleIndex(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadModuleIndex(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing modules.dep: error = %v, want ErrNotExist", err)
	}
	writeFile(t, filepath.Join(dir, "modules.dep"), "kernel/a.ko: kernel/b.ko\nkernel/b.ko:\n")
	// Without modules.builtin, a built-in name is simply unknown.
	ix, err := LoadModuleIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Resolve([]string{"c"}); !errors.Is(err, ErrModuleNotFound) {
		t.Fatalf("error = %v, want ErrModuleNotFound", err)
	}
	writeFile(t, filepath.Join(dir, "modules.builtin"), "kernel/c.ko\n")
	ix, err = LoadModuleIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	mods, err := ix.Resolve([]string{"a", "c"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Module{{"b", "kernel/b.ko"}, {"a", "kernel/a.ko"}}
	if !slices.Equal(mods, want) {
		t.Errorf("Resolve = %v, want %v", mods, want)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
