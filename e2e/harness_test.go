//go:build e2e

// Package e2e drives podvisor with real VMs. The tests need root, QEMU and a
// built guest image (make e2e builds it and passes -guest-dir and -bin-dir).
package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podvisor/podvisor/e2e/hostnet"
	"github.com/podvisor/podvisor/e2e/hoststate"
	"github.com/podvisor/podvisor/hypervisor/vmmselect"
	"github.com/podvisor/podvisor/podvm"
)

// Set by make e2e: where the guest image and the podvisor binaries are.
var (
	guestDir = os.Getenv("PODVISOR_GUEST_DIR")
	binDir   = os.Getenv("PODVISOR_BIN_DIR")
)

// busyboxPath is Debian's busybox-static, copied into a VM's shared
// directory by the tests; it is never part of the guest image.
const busyboxPath = "/bin/busybox"

func TestMain(m *testing.M) {
	if reason := missingPrerequisite(); reason != "" {
		fmt.Fprintln(os.Stderr, "e2e: "+reason)
		os.Exit(1)
	}
	// The daemon tests' CNI network leaves its bridge and the plugins'
	// shared chains; remove them unless they were there before.
	before := hostnet.Take(e2eBridge)
	code := m.Run()
	before.Restore(e2eBridge)
	os.Exit(code)
}

// missingPrerequisite names what the e2e tests cannot run without. They fail
// rather than skip: make e2e installs all of it, so a gap is a bug.
func missingPrerequisite() string {
	switch {
	case os.Geteuid() != 0:
		return "must run as root (VMs, taps, namespaces)"
	case guestDir == "":
		return "PODVISOR_GUEST_DIR not set (run through make e2e)"
	}
	for _, f := range []string{"vmlinuz", "initramfs.img", "manifest.json"} {
		if _, err := os.Stat(filepath.Join(guestDir, f)); err != nil {
			return "guest image incomplete: " + err.Error()
		}
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return "qemu-system-x86_64 not installed"
	}
	if _, err := os.Stat(busyboxPath); err != nil {
		return "busybox-static not installed"
	}
	return ""
}

// vmmCredentials returns the unprivileged account the VMM runs as.
func vmmCredentials(t testing.TB) (uint32, uint32) {
	t.Helper()
	u, err := user.Lookup("podvisor-vmm")
	if err != nil {
		t.Fatalf("VMM account: %v (make deps creates it)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uint32(uid), uint32(gid)
}

var (
	vmmOnce   sync.Once
	vmmChoice vmmselect.Choice
	vmmErr    error
)

// chooseVMM runs the daemon's automatic VMM selection once per test binary:
// on this kind of host it must settle on QEMU.
func chooseVMM(t testing.TB) vmmselect.Choice {
	vmmOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		vmmChoice, vmmErr = vmmselect.Choose(ctx, vmmselect.Options{
			Driver: vmmselect.Auto,
			Kernel: filepath.Join(guestDir, "vmlinuz"),
		})
	})
	if vmmErr != nil {
		t.Fatalf("choose VMM: %v", vmmErr)
	}
	return vmmChoice
}

// env is one test's pod VM environment: a private state directory under
// /run (traversable by the VMM account, unlike t.TempDir) and a manager.
type env struct {
	t        testing.TB
	stateDir string
	mgr      *podvm.Manager
}

func newEnv(t testing.TB, guest string) *env {
	t.Helper()
	return newEnvWith(t, guest, nil)
}

// newEnvWith is newEnv with a chance to adjust the manager's configuration.
func newEnvWith(t testing.TB, guest string, adjust func(*podvm.Config)) *env {
	t.Helper()
	if guest == "" {
		guest = guestDir
	}
	stateDir, err := os.MkdirTemp("/run", "podvisor-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(stateDir, 0o711); err != nil {
		t.Fatal(err)
	}
	uid, gid := vmmCredentials(t)
	choice := chooseVMM(t)
	cfg := podvm.Config{
		StateDir:    stateDir,
		GuestDir:    guest,
		Driver:      choice.Driver,
		KVM:         choice.KVM,
		VMMUser:     uid,
		VMMGroup:    gid,
		BootTimeout: 3 * time.Minute,
		StopTimeout: 10 * time.Second,
	}
	if adjust != nil {
		adjust(&cfg)
	}
	mgr, err := podvm.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, stateDir: stateDir, mgr: mgr}
	t.Cleanup(func() {
		e.checkNothingLeft()
		if os.Getenv("PODVISOR_E2E_KEEP") == "" {
			os.RemoveAll(stateDir)
		}
	})
	return e
}

// sharedDir makes a pod shared directory holding busybox.
func (e *env) sharedDir() string {
	e.t.Helper()
	dir := filepath.Join(e.stateDir, "share-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Mkdir(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := copyFile(busyboxPath, filepath.Join(dir, "busybox"), 0o755); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// boot starts a VM with a shared directory and registers its Stop.
func (e *env) boot(id string) *podvm.VM {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	console := filepath.Join(e.stateDir, "share-console-"+id+".log")
	vm, err := e.mgr.Boot(ctx, podvm.Spec{ID: id, VCPUs: 1, MemoryMiB: 256, SharedDir: e.sharedDir(), ConsoleLog: console})
	if err != nil {
		b, _ := os.ReadFile(console)
		e.t.Fatalf("boot %s: %v\nguest console:\n%s", id, err, b)
	}
	e.t.Cleanup(func() {
		if err := vm.Stop(context.Background()); err != nil {
			e.t.Errorf("stop %s: %v", id, err)
		}
	})
	return vm
}

// checkNothingLeft fails the test if any VM directory or any process
// started for this environment survives.
func (e *env) checkNothingLeft() {
	e.t.Helper()
	entries, _ := os.ReadDir(e.stateDir)
	for _, ent := range entries {
		if strings.HasPrefix(ent.Name(), "share-") {
			continue
		}
		e.t.Errorf("left behind in state dir: %s", ent.Name())
	}
	if pids := hoststate.ProcessesMentioning(e.stateDir); len(pids) > 0 {
		e.t.Errorf("processes left behind: %v", pids)
	}
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// bb is the path of busybox inside the guest.
func bb(applet string, args ...string) []string {
	return append([]string{podvm.GuestSharedDir + "/busybox", applet}, args...)
}
