package guest

import (
	"os"
	"path/filepath"
	"testing"
)

// TestResolveRuntime resolves the test binary's own loader and libraries
// from the host root, following the /lib64 -> /lib/x86_64-linux-gnu kind of
// absolute link as if root were /.
func TestResolveRuntime(t *testing.T) {
	const bin = "/bin/ls" // dynamically linked on Debian
	if _, err := os.Stat(bin); err != nil {
		t.Skip("no /bin/ls")
	}
	files, err := ResolveRuntime("/", bin)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range files {
		got[f.ImagePath] = true
		fi, err := os.Stat(f.HostPath)
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s: host path %s is not a regular file", f.ImagePath, f.HostPath)
		}
	}
	if !got[bin] || !got["/lib64/ld-linux-x86-64.so.2"] || !got["/lib/x86_64-linux-gnu/libc.so.6"] {
		t.Fatalf("files %v lack the binary, the loader or libc", got)
	}
}

func TestResolveInRootStaysInRoot(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "lib"), 0o755)
	os.WriteFile(filepath.Join(root, "lib", "real.so"), []byte("x"), 0o644)
	os.Symlink("/lib/real.so", filepath.Join(root, "lib", "abs.so"))
	os.Symlink("../../../../../lib/real.so", filepath.Join(root, "lib", "rel.so"))
	os.Symlink("/etc/passwd", filepath.Join(root, "lib", "host.so"))
	for _, p := range []string{"/lib/abs.so", "/lib/rel.so"} {
		h, err := resolveInRoot(root, p)
		if err != nil || h != filepath.Join(root, "lib", "real.so") {
			t.Errorf("%s: %q, %v", p, h, err)
		}
	}
	if h, err := resolveInRoot(root, "/lib/host.so"); err == nil {
		t.Errorf("link to a host file resolved to %s", h)
	}
	if _, _, err := findLibrary(root, "missing.so"); err == nil {
		t.Error("missing library found")
	}
}
