package podvm

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestPrepareRootfsIDMapped mounts a rootfs for a pod user namespace
// mapping 0 → 1000: the layer's files appear owned by the mapped IDs, the
// rootfs's root by the mapped root, and the layer itself is unchanged.
// It needs root (mounts) and a kernel and filesystem with ID-mapped mounts.
func TestPrepareRootfsIDMapped(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	dir := t.TempDir()
	if err := IDMappedLayersSupported(dir); err != nil {
		t.Skipf("no ID-mapped mounts here: %v", err)
	}
	lower := filepath.Join(dir, "layer")
	if err := os.MkdirAll(filepath.Join(lower, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lower, "etc", "nobody"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(lower, "etc", "nobody"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(dir, "shared")
	userns := IDMapping{UID: IDRange{HostID: 1000, Size: 100000}, GID: IDRange{HostID: 2000, Size: 100000}}
	const id = "0123456789abcdef"
	_, cleanup, err := PrepareRootfs(context.Background(), shared, id, []string{lower}, filepath.Join(dir, "upper"), userns)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	}()
	rootfs := filepath.Join(shared, "containers", id, "rootfs")
	for _, c := range []struct {
		path     string
		uid, gid uint32
	}{
		{"", 1000, 2000}, {"etc", 1000, 2000}, {"etc/nobody", 1000 + 65534, 2000 + 65534},
	} {
		if uid, gid := owner(t, filepath.Join(rootfs, c.path)); uid != c.uid || gid != c.gid {
			t.Errorf("/%s owned by %d:%d, want %d:%d", c.path, uid, gid, c.uid, c.gid)
		}
	}
	if uid, _ := owner(t, filepath.Join(lower, "etc")); uid != 0 {
		t.Errorf("the layer changed: etc owned by %d", uid)
	}
}

func owner(t *testing.T, path string) (uint32, uint32) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid
}
