package podvm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/podvisor/podvisor/hypervisor/qemu"
	"github.com/podvisor/podvisor/podvm/mountns"
)

// TestBootingStateIsOnlyForCleanup checks that the record a boot leaves
// before it finishes is listed (so a restarted daemon can remove it) but
// never re-attached, and that Cleanup removes it.
func TestBootingStateIsOnlyForCleanup(t *testing.T) {
	stateDir := t.TempDir()
	m := &Manager{cfg: Config{StateDir: stateDir, Driver: qemu.New(qemu.Options{})}}
	dir := filepath.Join(stateDir, "halfbooted")
	if err := os.Mkdir(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	b := &boot{m: m, spec: Spec{ID: "halfbooted"}, dir: dir}
	if err := b.recordBooting(context.Background()); err != nil {
		t.Fatal(err)
	}
	ids, err := m.List()
	if err != nil || !slices.Contains(ids, "halfbooted") {
		t.Fatalf("List = %v, %v; want the half-booted VM", ids, err)
	}
	if _, err := m.Reattach(context.Background(), "halfbooted"); !errors.Is(err, ErrGone) {
		t.Fatalf("Reattach = %v, want ErrGone", err)
	}
	if err := m.Cleanup(context.Background(), "halfbooted"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("VM directory survives Cleanup: %v", err)
	}
}

// TestCleanupDropsMountNamespace checks that Cleanup of a VM whose boot
// died after pinning its mount namespace removes the pin, and with it the
// mounts of its shared directory.
func TestCleanupDropsMountNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create mount namespaces")
	}
	stateDir := t.TempDir()
	m := &Manager{cfg: Config{StateDir: stateDir, Driver: qemu.New(qemu.Options{})}}
	dir := filepath.Join(stateDir, "pinned")
	shared := filepath.Join(t.TempDir(), "shared")
	for _, d := range []string{dir, shared} {
		if err := os.Mkdir(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	b := &boot{m: m, spec: Spec{ID: "pinned", SharedDir: shared}, dir: dir}
	if err := b.recordBooting(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.createMountNS(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.shareMounts(context.Background()); err != nil {
		t.Fatal(err)
	}
	pin := b.mountNS.Pin()
	if err := m.Cleanup(context.Background(), "pinned"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("VM directory survives Cleanup: %v", err)
	}
	if _, err := mountns.Open(pin); err == nil {
		mountns.Remove(pin)
		t.Error("mount namespace still pinned after Cleanup")
	}
}
