//go:build e2e

package podvm

import (
	"context"
	"errors"
	"os"
	"os/user"
	"strconv"
	"testing"
	"time"

	"github.com/podvisor/podvisor/hypervisor/qemu"
	"github.com/podvisor/podvisor/podvm/agent/agentpb"
	"github.com/podvisor/podvisor/podvm/channel"
)

// bootForTest boots a real VM (QEMU) from the guest image make e2e built.
func bootForTest(t *testing.T, id string) *VM {
	t.Helper()
	guestDir := os.Getenv("PODVISOR_GUEST_DIR")
	if guestDir == "" || os.Geteuid() != 0 {
		t.Skip("needs root and PODVISOR_GUEST_DIR (run through make e2e)")
	}
	u, err := user.Lookup("podvisor-vmm")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	stateDir, err := os.MkdirTemp("/run", "podvisor-podvm-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(stateDir, 0o711)
	t.Cleanup(func() { os.RemoveAll(stateDir) })
	m, err := NewManager(Config{
		StateDir: stateDir, GuestDir: guestDir, Driver: qemu.New(qemu.Options{}),
		VMMUser: uint32(uid), VMMGroup: uint32(gid), BootTimeout: 3 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	vm, err := m.Boot(ctx, Spec{ID: id, VCPUs: 1, MemoryMiB: 256})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := vm.Stop(context.Background()); err != nil {
			t.Error(err)
		}
		if ents, _ := os.ReadDir(stateDir); len(ents) != 0 {
			t.Errorf("state left behind: %v", ents)
		}
	})
	return vm
}

// TestChannelAuthenticationWithRealGuest drops the established session and
// reconnects to the running agent with wrong keys on each side: the guest
// refuses a host with the wrong key and the host refuses a guest whose
// certificate is not the pinned one. The right keys still work afterwards.
func TestChannelAuthenticationWithRealGuest(t *testing.T) {
	vm := bootForTest(t, "auth")
	keys := vm.dir + "/" + keysSubdir
	hostID, guestCert, err := loadHostKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	// The VM watcher treats the end of the session as the loss of the VM;
	// mark it stopping so that this deliberate disconnect is not reported.
	vm.mu.Lock()
	vm.stopping = true
	vm.mu.Unlock()
	vm.agent.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	impostor, err := channel.NewIdentity("impostor")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialAgent(ctx, vm.vmm, impostor, guestCert); !errors.Is(err, channel.ErrAuth) {
		t.Fatalf("host with the wrong key: got %v, want ErrAuth from the guest", err)
	}
	if _, err := dialAgent(ctx, vm.vmm, hostID, impostor.CertDER); !errors.Is(err, channel.ErrAuth) {
		t.Fatalf("guest not matching the pinned certificate: got %v, want ErrAuth", err)
	}
	a, err := dialAgent(ctx, vm.vmm, hostID, guestCert)
	if err != nil {
		b, _ := os.ReadFile(vm.dir + "/" + vmmSubdir + "/console.log")
		t.Logf("guest console:\n%s", b)
		t.Fatalf("reconnect with the right keys: %v", err)
	}
	vm.agent = a
	if _, err := a.client.GuestInfo(ctx, &agentpb.Empty{}); err != nil {
		t.Fatal(err)
	}
}

// TestReattachAfterDaemonRestart drops every host-side handle of a running
// VM, as a daemon exit does, and finds it again through a new Manager: the
// same VMM and agent answer a new authenticated session.
func TestReattachAfterDaemonRestart(t *testing.T) {
	vm := bootForTest(t, "reattach")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The daemon goes away: its session ends, the VMM and agent stay.
	if err := vm.Release(); err != nil {
		t.Fatal(err)
	}

	m2, err := NewManager(vm.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := m2.List()
	if err != nil || len(ids) != 1 || ids[0] != "reattach" {
		t.Fatalf("List = %v, %v", ids, err)
	}
	v2, err := m2.Reattach(ctx, "reattach")
	if err != nil {
		t.Fatalf("reattach: %v", err)
	}
	if v2.VMM().State().PID != vm.VMM().State().PID {
		t.Fatal("re-attached to a different VMM process")
	}
	info, err := v2.Agent().GuestInfo(ctx, &agentpb.Empty{})
	if err != nil || info.UptimeSeconds <= 0 {
		t.Fatalf("guest info after reattach: %+v, %v", info, err)
	}
	// From here the re-attached handle owns the VM; bootForTest's cleanup
	// stops the old handle, whose Stop must now be a harmless repeat.
	if err := v2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Reattach(ctx, "reattach"); !errors.Is(err, ErrGone) {
		t.Fatalf("reattach to a stopped VM: %v, want ErrGone", err)
	}
}
