//go:build e2e

package qemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/virtiofsd"
	"github.com/podvisor/podvisor/hypervisor/vmmproc"
)

const bootTimeout = 60 * time.Second

// testOptions lets a run choose the machine and firmware under test, e.g.
// PODVISOR_TEST_QEMU_MACHINE=pc PODVISOR_TEST_QEMU_FIRMWARE=/usr/share/qemu/qboot.rom.
func testOptions() Options {
	return Options{
		Machine:  os.Getenv("PODVISOR_TEST_QEMU_MACHINE"),
		Firmware: os.Getenv("PODVISOR_TEST_QEMU_FIRMWARE"),
	}
}

func vmConfig(t *testing.T, img guestImage, id string) hypervisor.Config {
	dir := vmStateDir(t)
	return hypervisor.Config{
		ID: id, StateDir: dir,
		Kernel: img.kernel, Initramfs: img.initramfs,
		KernelArgs: []string{"console=ttyS0", "quiet", "panic=-1"},
		VCPUs:      1, MemoryMiB: 256,
		User: vmUID, Group: vmGID,
		ConsoleLog: filepath.Join(dir, "console.log"),
	}
}

// launch boots cfg and registers a Stop for the end of the test.
func launchVM(t *testing.T, d *Driver, cfg hypervisor.Config) hypervisor.VM {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	vm, err := d.Launch(ctx, cfg)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	t.Cleanup(func() { _ = vm.Stop(context.Background()) })
	return vm
}

func dialAgent(t *testing.T, vm hypervisor.VM) *agentClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := vm.DialAgent(ctx)
	if err != nil {
		t.Fatalf("DialAgent: %v", err)
	}
	return newAgentClient(c)
}

// assertGone checks that a stopped VM left no process and no socket.
func assertGone(t *testing.T, vm hypervisor.VM, stateDir string) {
	t.Helper()
	st := vm.State()
	select {
	case <-vm.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after Stop")
	}
	if s, err := vmmproc.StartTime(st.PID); err == nil && s == st.StartTime {
		t.Errorf("QEMU (pid %d) still running", st.PID)
	}
	for _, name := range []string{qmpSocketName, agentSocketName} {
		if _, err := os.Lstat(filepath.Join(stateDir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (%v)", name, err)
		}
	}
}

func TestVMLifecycle(t *testing.T) {
	img := requireVM(t)
	netns := testNetns(t)
	cfg := vmConfig(t, img, "lifecycle")
	cfg.NetNSPath = netns
	cfg.NICs = []hypervisor.NIC{{
		ID: "eth0", MAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 1}, MTU: 1400, Tap: newTap(t, netns, "pvqtap0"),
	}}
	start := time.Now()
	vm := launchVM(t, New(testOptions()), cfg)
	launched := time.Since(start)
	first := waitConsole(t, cfg.ConsoleLog, "guestinit: started", start, bootTimeout)
	ready := waitConsole(t, cfg.ConsoleLog, "guestinit: agent port", start, bootTimeout)
	t.Logf("TCG boot: Launch returned after %v, first console line after %v, agent port after %v", launched, first, ready)

	a := dialAgent(t, vm)
	if got := a.ask(t, "echo hello, guest"); got != "hello, guest" {
		t.Fatalf("echo: got %q", got)
	}
	if got := a.ask(t, "net"); got != "net eth0" {
		t.Errorf("boot NIC: got %q, want net eth0", got)
	}

	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := vm.AddDevice(ctx, hypervisor.Device{Disk: &hypervisor.Disk{ID: "data", Path: disk}}); err != nil {
		t.Fatalf("AddDevice disk: %v", err)
	}
	a.askUntil(t, "block", func(s string) bool { return s == "block vda" })
	nic := &hypervisor.NIC{ID: "eth1", MAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 2}, Tap: newTap(t, netns, "pvqtap1")}
	if err := vm.AddDevice(ctx, hypervisor.Device{NIC: nic}); err != nil {
		t.Fatalf("AddDevice NIC: %v", err)
	}
	a.askUntil(t, "net", func(s string) bool { return s == "net eth0,eth1" })

	t0 := time.Now()
	if err := vm.RemoveDevice(ctx, "data"); err != nil {
		t.Fatalf("RemoveDevice disk: %v", err)
	}
	t.Logf("disk unplug took %v", time.Since(t0))
	a.askUntil(t, "block", func(s string) bool { return s == "block" })
	if err := vm.RemoveDevice(ctx, "eth1"); err != nil {
		t.Fatalf("RemoveDevice NIC: %v", err)
	}
	a.askUntil(t, "net", func(s string) bool { return s == "net eth0" })
	if err := vm.RemoveDevice(ctx, "eth1"); err != nil {
		t.Errorf("second RemoveDevice: %v", err)
	}
	if testOptions().withDefaults().Machine == MachineQ35 {
		if err := vm.RemoveDevice(ctx, "eth0"); !errors.Is(err, hypervisor.ErrUnsupported) {
			t.Errorf("RemoveDevice of the boot NIC on q35: %v, want ErrUnsupported", err)
		}
	}

	// One connection at a time: a new one works once the old is closed.
	a.conn.Close()
	a = dialAgent(t, vm)
	if got := a.ask(t, "echo again"); got != "again" {
		t.Fatalf("echo after reconnect: got %q", got)
	}
	a.conn.Close()

	if err := vm.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	assertGone(t, vm, cfg.StateDir)
	if err := vm.Err(); err != nil {
		t.Errorf("Err after Stop = %v", err)
	}
	if err := vm.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := vm.DialAgent(ctx); !errors.Is(err, hypervisor.ErrNotRunning) {
		t.Errorf("DialAgent after Stop: %v, want ErrNotRunning", err)
	}
}

func TestVMKilled(t *testing.T) {
	img := requireVM(t)
	cfg := vmConfig(t, img, "killed")
	vm := launchVM(t, New(testOptions()), cfg)
	if err := unix.Kill(vm.State().PID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-vm.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("Done not closed 2s after QEMU was killed")
	}
	if err := vm.Err(); !errors.Is(err, hypervisor.ErrNotRunning) || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Err = %v, want ErrNotRunning saying QEMU was killed", err)
	}
	if _, err := vm.DialAgent(context.Background()); !errors.Is(err, hypervisor.ErrNotRunning) {
		t.Errorf("DialAgent = %v, want ErrNotRunning", err)
	}
	if err := vm.Stop(context.Background()); err != nil {
		t.Errorf("Stop of a dead VM: %v", err)
	}
	assertGone(t, vm, cfg.StateDir)
}

func TestVMGuestPowerOff(t *testing.T) {
	img := requireVM(t)
	cfg := vmConfig(t, img, "poweroff")
	cfg.VCPUs = 2 // also covers multi-threaded TCG
	vm := launchVM(t, New(testOptions()), cfg)
	a := dialAgent(t, vm)
	if got := a.ask(t, "poweroff"); got != "ok" {
		t.Fatalf("poweroff: %q", got)
	}
	select {
	case <-vm.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("QEMU still running after the guest powered off")
	}
	if err := vm.Err(); !errors.Is(err, hypervisor.ErrNotRunning) || !strings.Contains(err.Error(), "guest-shutdown") {
		t.Errorf("Err = %v, want ErrNotRunning with the guest-shutdown reason", err)
	}
}

func TestLaunchFailureLeavesNothing(t *testing.T) {
	img := requireVM(t)
	notAKernel := filepath.Join(imageDir, "not-a-kernel")
	if err := os.WriteFile(notAKernel, []byte("this is not a kernel\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		opts   Options
		modify func(*hypervisor.Config)
	}{
		{"kernel QEMU cannot load", Options{}, func(c *hypervisor.Config) { c.Kernel = notAKernel }},
		{"missing firmware", Options{Firmware: "/nonexistent/bios.bin"}, nil},
		{"vhost-user socket nobody listens on", Options{}, func(c *hypervisor.Config) {
			c.SharedFS = &hypervisor.SharedFS{Tag: "fs", Socket: filepath.Join(c.StateDir, "nobody.sock")}
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := vmConfig(t, img, fmt.Sprintf("fail%d-%d", i, os.Getpid()))
			if tt.modify != nil {
				tt.modify(&cfg)
			}
			ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
			defer cancel()
			_, err := New(tt.opts).Launch(ctx, cfg)
			if err == nil {
				t.Fatal("Launch succeeded")
			}
			t.Logf("Launch: %v", err)
			if ents, _ := os.ReadDir(cfg.StateDir); len(ents) != 0 {
				t.Errorf("StateDir not empty: %v", ents)
			}
			if pids := qemuProcesses("guest=" + cfg.ID + ","); len(pids) != 0 {
				t.Errorf("QEMU left running: %v", pids)
			}
		})
	}
}

func TestReattach(t *testing.T) {
	img := requireVM(t)
	cfg := vmConfig(t, img, "reattach")
	vm := launchVM(t, New(testOptions()), cfg)
	st := vm.State()
	// The old daemon's QMP connection dies with it.
	vm.(*VM).qmp.close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := testOptions()
	opts.HotplugSlots = 1
	vm2, err := New(opts).Reattach(ctx, st)
	if err != nil {
		t.Fatalf("Reattach: %v", err)
	}
	t.Cleanup(func() { _ = vm2.Stop(context.Background()) })
	if got := vm2.State(); got.PID != st.PID || got.Extra[extraHotplugSlots] != st.Extra[extraHotplugSlots] {
		t.Errorf("State after Reattach = %+v (the launch layout must survive option changes)", got)
	}
	a := dialAgent(t, vm2)
	if got := a.ask(t, "echo reattached"); got != "reattached" {
		t.Fatalf("echo: %q", got)
	}
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := vm2.AddDevice(ctx, hypervisor.Device{Disk: &hypervisor.Disk{ID: "d", Path: disk, ReadOnly: true}}); err != nil {
		t.Fatalf("AddDevice: %v", err)
	}
	a.askUntil(t, "block", func(s string) bool { return s == "block vda" })
	if err := vm2.RemoveDevice(ctx, "d"); err != nil {
		t.Fatalf("RemoveDevice: %v", err)
	}
	a.conn.Close()
	if err := vm2.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	assertGone(t, vm2, cfg.StateDir)

	if _, err := New(testOptions()).Reattach(ctx, st); !errors.Is(err, hypervisor.ErrNotRunning) {
		t.Errorf("Reattach of a stopped VM: %v, want ErrNotRunning", err)
	}
}

func TestSharedFS(t *testing.T) {
	img := requireVM(t)
	cfg := vmConfig(t, img, "sharedfs")
	share := filepath.Join(t.TempDir(), "share")
	if err := os.Mkdir(share, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(share, "hello.txt"), []byte("hello from the host\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	fsd, err := virtiofsd.Start(ctx, virtiofsd.Config{
		ID: cfg.ID, SharedDir: share,
		SocketPath:  filepath.Join(cfg.StateDir, "virtiofsd.sock"),
		SocketGroup: vmGID,
		LogPath:     filepath.Join(cfg.StateDir, "virtiofsd.log"),
	})
	if err != nil {
		t.Fatalf("start virtiofsd: %v", err)
	}
	t.Cleanup(func() { _ = fsd.Stop(context.Background()) })
	cfg.SharedFS = &hypervisor.SharedFS{Tag: "podfs", Socket: fsd.SocketPath()}
	vm := launchVM(t, New(testOptions()), cfg)
	a := dialAgent(t, vm)
	if got := a.ask(t, "mount podfs"); got != "ok" {
		t.Fatalf("mount: %q", got)
	}
	// The file is root's, mode 0600: virtiofsd serves it regardless.
	if got := a.ask(t, "cat /mnt/hello.txt"); got != "hello from the host" {
		t.Fatalf("cat: %q", got)
	}
	time.Sleep(2 * time.Second) // let the guest settle before measuring
	fsdRSS := rssKiB(fsd.State().PID)
	for _, c := range childPIDs(fsd.State().PID) {
		fsdRSS += rssKiB(c)
	}
	t.Logf("idle 256 MiB VM: QEMU RSS %d KiB, virtiofsd RSS %d KiB (with its sandbox child)",
		rssKiB(vm.State().PID), fsdRSS)
	a.conn.Close()

	if err := vm.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(cfg.StateDir, "virtiofsd.log")); err == nil {
		t.Logf("virtiofsd log:\n%s", b)
	}
	// virtiofsd exits by itself once its VMM is gone.
	select {
	case <-fsd.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("virtiofsd still running after its VMM stopped")
	}
	if err := fsd.Err(); err != nil {
		t.Errorf("virtiofsd Err after its VMM left = %v", err)
	}
	if err := fsd.Stop(ctx); err != nil {
		t.Errorf("Stop of an exited virtiofsd: %v", err)
	}
	if _, err := os.Lstat(fsd.SocketPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("virtiofsd socket left behind")
	}
}

func TestProbeKVM(t *testing.T) {
	img := requireVM(t)
	start := time.Now()
	usable, reason := New(testOptions()).ProbeKVM(context.Background(), img.kernel)
	t.Logf("ProbeKVM = %v (%s) in %v", usable, reason, time.Since(start))
	if time.Since(start) > probeTimeout+5*time.Second {
		t.Errorf("probe took %v, longer than its bound", time.Since(start))
	}
	if pids := qemuProcesses("earlyprintk=ttyS0"); len(pids) != 0 {
		t.Errorf("probe VM left running: %v", pids)
	}
	if want := os.Getenv("PODVISOR_TEST_EXPECT_KVM"); want != "" && want != fmt.Sprint(usable) {
		t.Errorf("ProbeKVM = %v, PODVISOR_TEST_EXPECT_KVM=%s", usable, want)
	}
}
