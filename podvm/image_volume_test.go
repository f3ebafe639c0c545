package podvm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/podvisor/podvisor/podvm/mountns"
)

// TestShareImage mounts image layers as read-only volumes (one layer: a
// bind; several: an overlay), resolves sub-paths inside the image only, and
// releases everything with the container's files.
func TestShareImage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	root := t.TempDir()
	shared, upper := filepath.Join(root, "shared"), filepath.Join(root, "upper")
	base, top := filepath.Join(root, "layers/base"), filepath.Join(root, "layers/top")
	for _, d := range []string{shared, upper, base + "/etc", base + "/bin", top + "/etc"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(base+"/etc/passwd", []byte("base"), 0o644)
	os.WriteFile(top+"/etc/passwd", []byte("top"), 0o644)
	os.WriteFile(base+"/bin/sh", []byte("#!"), 0o755)
	// A symlink that would leave the image if followed on the host.
	os.Symlink("/", base+"/escape")
	os.Symlink("../../etc", base+"/bin/up")

	v := &VM{id: "pod", sharedDir: shared}
	mounts := filepath.Join(shared, "containers/c1/mounts")
	t.Cleanup(func() { UnmountBelow(shared) })

	g, err := v.ShareImage("c1", "img", []string{top, base}, "")
	if err != nil {
		t.Fatal(err)
	}
	if g != GuestContainersDir+"/c1/mounts/img" {
		t.Fatalf("guest path %q", g)
	}
	if b, _ := os.ReadFile(mounts + "/img/etc/passwd"); string(b) != "top" {
		t.Fatalf("topmost layer should win: %q", b)
	}
	if err := os.WriteFile(mounts+"/img/etc/new", nil, 0o644); err == nil {
		t.Fatal("wrote into an image volume")
	}

	g, err = v.ShareImage("c1", "one", []string{base}, "etc")
	if err != nil {
		t.Fatal(err)
	}
	if g != GuestContainersDir+"/c1/mounts/one/etc" {
		t.Fatalf("guest path of sub-path %q", g)
	}
	if err := os.WriteFile(mounts+"/one/etc/new", nil, 0o644); err == nil {
		t.Fatal("wrote into a single-layer image volume")
	}
	if _, err := os.Stat(base + "/etc/new"); err == nil {
		t.Fatal("image layer modified")
	}

	// Symlinks resolve inside the image: "escape" is the image's root.
	for i, c := range []struct{ sub, want string }{{"escape", ""}, {"escape/etc", "etc"}, {"bin/up", "etc"}, {"./etc/", "etc"}} {
		sub, want, name := c.sub, c.want, fmt.Sprintf("s%d", i)
		g, err := v.ShareImage("c1", name, []string{base}, sub)
		if err != nil {
			t.Fatalf("sub-path %q: %v", sub, err)
		}
		if w := filepath.Join(GuestContainersDir, "c1/mounts", name, want); g != w {
			t.Errorf("sub-path %q: guest path %q, want %q", sub, g, w)
		}
	}
	for _, bad := range []string{"not-existing", "../etc", "/etc", "etc/../../x"} {
		if _, err := v.ShareImage("c1", "bad", []string{base}, bad); !errors.Is(err, ErrInvalidContainer) {
			t.Errorf("sub-path %q: err %v, want ErrInvalidContainer", bad, err)
		}
		if _, err := os.Stat(mounts + "/bad"); !os.IsNotExist(err) {
			t.Fatalf("sub-path %q: mount point left behind (%v)", bad, err)
		}
	}
	if _, err := v.ShareImage("c1", "x", nil, ""); !errors.Is(err, ErrInvalidContainer) {
		t.Errorf("no layers: %v", err)
	}

	if err := v.ReleaseContainerFiles("c1", upper); err != nil {
		t.Fatal(err)
	}
	if left, _ := mountns.MountsUnder(shared); len(left) > 0 {
		t.Fatalf("mounts left: %v", left)
	}
	if b, _ := os.ReadFile(base + "/etc/passwd"); string(b) != "base" {
		t.Fatalf("layer content after release: %q", b)
	}
}

// TestShareImageInPodMountNamespace: an image volume is mounted in the
// pod's mount namespace, never in the host's.
func TestShareImageInPodMountNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	root := t.TempDir()
	v := testVM(t, root)
	a, b := filepath.Join(root, "layers/a"), filepath.Join(root, "layers/b")
	for _, d := range []string{a, b} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(a+"/file", []byte("a"), 0o644)
	if _, err := v.ShareImage("c1", "img", []string{b, a}, ""); err != nil {
		t.Fatal(err)
	}
	if m := hostMountsUnder(t, v.sharedDir); len(m) != 0 {
		t.Fatalf("image volume mounted on the host: %v", m)
	}
	err := v.inMountNS(func() error {
		got, err := os.ReadFile(filepath.Join(v.sharedDir, "containers/c1/mounts/img/file"))
		if err != nil || string(got) != "a" {
			return fmt.Errorf("image content in the pod's namespace: %q %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.ReleaseContainerFiles("c1", filepath.Join(root, "upper")); err != nil {
		t.Fatal(err)
	}
}
