package podvm

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/podvisor/podvisor/podvm/mountns"
)

// testVM is a VM handle with a shared directory under root and a mount
// namespace of its own, removed when the test ends, as Boot makes them.
func testVM(t *testing.T, root string) *VM {
	t.Helper()
	shared := filepath.Join(root, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	ns, err := mountns.Create(filepath.Join(root, "mntns"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := mountns.Remove(ns.Pin()); err != nil {
			t.Error(err)
		}
	})
	if err := ns.Run(func() error { _, err := ShareMount(shared); return err }); err != nil {
		t.Fatal(err)
	}
	return &VM{id: "pod", sharedDir: shared, mountNS: ns}
}

// hostMountsUnder lists the mounts below dir that the host sees.
func hostMountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	m, err := mountns.MountsUnder(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestShareAndReleaseHostPaths bind-mounts a host directory and a file into
// a container's part of a shared directory, then releases them: the mounts
// go, the host data stays, and a read-only share is read-only on the host.
// No mount ever shows in the host's mount table.
func TestShareAndReleaseHostPaths(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	root := t.TempDir()
	upper, vol := filepath.Join(root, "upper"), filepath.Join(root, "volume")
	for _, d := range []string{upper, vol} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	precious := filepath.Join(vol, "data")
	os.WriteFile(precious, []byte("keep me"), 0o644)
	hostFile := filepath.Join(root, "hosts")
	os.WriteFile(hostFile, []byte("127.0.0.1 localhost\n"), 0o644)

	v := testVM(t, root)
	shared := v.sharedDir
	g, err := v.ShareHostPath("c1", "vol", vol, false, false)
	if err != nil {
		t.Fatal(err)
	}
	if g != GuestContainersDir+"/c1/mounts/vol" {
		t.Fatalf("guest path %q", g)
	}
	if _, err := v.ShareHostPath("c1", "hosts", hostFile, true, false); err != nil {
		t.Fatal(err)
	}
	if m := hostMountsUnder(t, shared); len(m) != 0 {
		t.Errorf("the host sees %v", m)
	}
	if err := v.inMountNS(func() error {
		return os.WriteFile(filepath.Join(shared, "containers/c1/mounts/hosts"), []byte("x"), 0o644)
	}); err == nil {
		t.Fatal("wrote through a read-only share")
	}
	var b []byte
	v.inMountNS(func() error {
		b, _ = os.ReadFile(filepath.Join(shared, "containers/c1/mounts/vol/data"))
		return nil
	})
	if string(b) != "keep me" {
		t.Fatalf("volume content through the share: %q", b)
	}
	for _, bad := range []struct{ id, name, path string }{
		{"../c", "v", vol}, {"c1", "../x", vol}, {"c1", "v2", "relative"}, {"c1", "v3", filepath.Join(root, "missing")},
		{"c1", "vol", vol}, // the name is taken
	} {
		if _, err := v.ShareHostPath(bad.id, bad.name, bad.path, false, false); err == nil {
			t.Errorf("ShareHostPath(%q, %q, %q) succeeded", bad.id, bad.name, bad.path)
		}
	}

	if err := v.ReleaseContainerFiles("c1", upper); err != nil {
		t.Fatal(err)
	}
	v.inMountNS(func() (err error) {
		if m, _ := mountns.MountsUnder(filepath.Join(shared, "containers")); len(m) != 0 {
			t.Errorf("mounts left: %v", m)
		}
		return nil
	})
	if b, err := os.ReadFile(precious); err != nil || string(b) != "keep me" {
		t.Fatalf("host volume damaged by release: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(shared, "containers/c1")); !os.IsNotExist(err) {
		t.Fatalf("container dir still there: %v", err)
	}
	if err := v.ReleaseContainerFiles("c1", upper); err != nil {
		t.Fatalf("second release: %v", err)
	}
}

// TestReadOnlyShareModes checks that a read-only share is read-only on the
// top mount only, or on every mount below it too when recursive. (That
// virtiofsd's copy is read-only too is checked with a real VM by e2e
// TestReadonlyMountHoldsAgainstGuestRoot.) The host can unmount and remove
// the submount while it is shared.
func TestReadOnlyShareModes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	for _, tc := range []struct {
		name                string
		recursive, subWrite bool
	}{
		{"top only", false, true},
		{"recursive", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			vol := filepath.Join(root, "volume")
			sub := filepath.Join(vol, "tmpfs")
			for _, d := range []string{vol, sub} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := unix.Mount("none", sub, "tmpfs", 0, ""); err != nil {
				t.Fatal(err)
			}
			defer unix.Unmount(sub, unix.MNT_DETACH)
			v := testVM(t, root)
			if _, err := v.ShareHostPath("c1", "vol", vol, true, tc.recursive); err != nil {
				t.Fatal(err)
			}
			defer v.ReleaseContainerFiles("c1", filepath.Join(root, "upper"))
			through := filepath.Join(v.sharedDir, "containers/c1/mounts/vol")
			var topErr, subErr error
			v.inMountNS(func() error {
				topErr = os.WriteFile(filepath.Join(through, "top"), nil, 0o644)
				subErr = os.WriteFile(filepath.Join(through, "tmpfs", "below"), nil, 0o644)
				return nil
			})
			if topErr == nil {
				t.Error("wrote to the top of a read-only share")
			}
			if (subErr == nil) != tc.subWrite {
				t.Errorf("write below the top: %v, want success %v", subErr, tc.subWrite)
			}
			if err := unix.Unmount(sub, unix.MNT_DETACH); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(sub); err != nil {
				t.Errorf("remove the host's submount while shared: %v", err)
			}
		})
	}
}

// TestSubmounts lists what is mounted below a directory, relative, parents
// first, without the directory's own mount.
func TestSubmounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	dir := t.TempDir()
	for _, d := range []string{"a", "a/b", "c"} {
		p := filepath.Join(dir, d)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("none", p, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Unmount(p, unix.MNT_DETACH) })
		os.MkdirAll(filepath.Join(dir, "a/b"), 0o755)
	}
	// Two mounts on one point are listed once.
	unix.Mount("none", filepath.Join(dir, "c"), "tmpfs", 0, "")
	t.Cleanup(func() { unix.Unmount(filepath.Join(dir, "c"), unix.MNT_DETACH) })
	got, err := Submounts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2] != "a/b" || !slices.Contains(got, "a") || !slices.Contains(got, "c") {
		t.Fatalf("Submounts = %q, want a and c before a/b", got)
	}
}
