package podvm

import (
	"golang.org/x/sys/unix"

	"os"
	"path/filepath"
	"testing"
)

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/a/b`:         "/a/b",
		`/a\040b`:      "/a b",
		`/x\011y\134z`: "/x\ty\\z",
		`/trailing\04`: `/trailing\04`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestShareAndReleaseHostPaths bind-mounts a host directory and a file into
// a container's part of a shared directory, then releases them: the mounts
// go, the host data stays, and a read-only share is read-only on the host.
func TestShareAndReleaseHostPaths(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	root := t.TempDir()
	shared, upper, vol := filepath.Join(root, "shared"), filepath.Join(root, "upper"), filepath.Join(root, "volume")
	for _, d := range []string{shared, upper, vol} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	precious := filepath.Join(vol, "data")
	os.WriteFile(precious, []byte("keep me"), 0o644)
	hostFile := filepath.Join(root, "hosts")
	os.WriteFile(hostFile, []byte("127.0.0.1 localhost\n"), 0o644)

	v := &VM{id: "pod", sharedDir: shared}
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
	if err := os.WriteFile(filepath.Join(shared, "containers/c1/mounts/hosts"), []byte("x"), 0o644); err == nil {
		t.Fatal("wrote through a read-only share")
	}
	if b, _ := os.ReadFile(filepath.Join(shared, "containers/c1/mounts/vol/data")); string(b) != "keep me" {
		t.Fatalf("volume content through the share: %q", b)
	}
	for _, bad := range []struct{ id, name, path string }{
		{"../c", "v", vol}, {"c1", "../x", vol}, {"c1", "v2", "relative"}, {"c1", "v3", filepath.Join(root, "missing")},
	} {
		if _, err := v.ShareHostPath(bad.id, bad.name, bad.path, false, false); err == nil {
			t.Errorf("ShareHostPath(%q, %q, %q) succeeded", bad.id, bad.name, bad.path)
		}
	}

	if err := v.ReleaseContainerFiles("c1", upper); err != nil {
		t.Fatal(err)
	}
	if m, _ := mountsUnder(shared); len(m) != 0 {
		t.Fatalf("mounts left: %v", m)
	}
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
// TestReadonlyMountHoldsAgainstGuestRoot.)
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
			shared, vol := filepath.Join(root, "shared"), filepath.Join(root, "volume")
			sub := filepath.Join(vol, "tmpfs")
			for _, d := range []string{shared, vol, sub} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := unix.Mount("none", sub, "tmpfs", 0, ""); err != nil {
				t.Fatal(err)
			}
			defer unix.Unmount(sub, unix.MNT_DETACH)
			v := &VM{id: "pod", sharedDir: shared}
			if _, err := v.ShareHostPath("c1", "vol", vol, true, tc.recursive); err != nil {
				t.Fatal(err)
			}
			defer v.ReleaseContainerFiles("c1", filepath.Join(root, "upper"))
			through := filepath.Join(shared, "containers/c1/mounts/vol")
			if err := os.WriteFile(filepath.Join(through, "top"), nil, 0o644); err == nil {
				t.Error("wrote to the top of a read-only share")
			}
			err := os.WriteFile(filepath.Join(through, "tmpfs", "below"), nil, 0o644)
			if (err == nil) != tc.subWrite {
				t.Errorf("write below the top: %v, want success %v", err, tc.subWrite)
			}
		})
	}
}
