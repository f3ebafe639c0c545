package cloudhypervisor

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/cloudhypervisor/chapi"
	"github.com/podvisor/podvisor/hypervisor/cloudhypervisor/chtest"
)

func TestLifecycle(t *testing.T) {
	const greeting = "agent ready\n"
	e := newTestEnv(t, chtest.Config{VsockGreeting: greeting})
	vm := e.launch()
	ctx := testCtx(t)

	// The VMM was started the way a real host needs it.
	var start chtest.Event
	for _, ev := range e.readEvents() {
		if ev.Kind == "start" {
			start = ev
		}
	}
	wantArgs := []string{
		"--api-socket", "path=" + filepath.Join(e.cfg.StateDir, apiSocketName),
		"--seccomp", "true",
		"--event-monitor", "path=" + filepath.Join(e.cfg.StateDir, eventsName),
	}
	if !slices.Equal(start.Args, wantArgs) {
		t.Errorf("VMM args = %q, want %q", start.Args, wantArgs)
	}
	if st := vm.State(); st.PID != start.PID || st.Driver != DriverName || st.StartTime == 0 {
		t.Errorf("State() = %+v, want PID %d of driver %s with a start time", st, start.PID, DriverName)
	}

	// Boot order: create, one add-net per NIC, boot, then info.
	var got []string
	for _, ev := range e.requests() {
		got = append(got, ev.Endpoint)
	}
	if want := []string{"vm.create", "vm.add-net", "vm.boot", "vm.info"}; !slices.Equal(got, want) {
		t.Errorf("launch requests = %q, want %q", got, want)
	}

	// The agent stream: greeting bytes that arrived with the OK line are
	// not lost, then the fake guest echoes.
	conn, err := vm.DialAgent(ctx)
	if err != nil {
		t.Fatalf("DialAgent: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, len(greeting))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != greeting {
		t.Fatalf("first bytes = %q, %v; want greeting %q", buf, err, greeting)
	}
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf = make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo = %q, %v", buf, err)
	}

	// Hotplug after boot.
	disk := writeFile(t, filepath.Join(e.cfg.StateDir, "disk.img"))
	if err := vm.AddDevice(ctx, hypervisor.Device{Disk: &hypervisor.Disk{ID: "disk1", Path: disk, ReadOnly: true}}); err != nil {
		t.Fatalf("AddDevice(disk): %v", err)
	}
	nic := testNIC(t, "eth1", 0x03)
	if err := vm.AddDevice(ctx, hypervisor.Device{NIC: &nic}); err != nil {
		t.Fatalf("AddDevice(nic): %v", err)
	}
	if err := vm.RemoveDevice(ctx, "disk1"); err != nil {
		t.Fatalf("RemoveDevice: %v", err)
	}
	var apiErr *APIError
	if err := vm.RemoveDevice(ctx, "disk1"); !errors.As(err, &apiErr) {
		t.Fatalf("RemoveDevice of a removed disk = %v, want an APIError", err)
	}

	if err := vm.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	waitDone(t, vm, time.Second)
	if err := vm.Err(); err != nil {
		t.Errorf("Err after Stop = %v", err)
	}
	if !processGone(start.PID) {
		t.Errorf("VMM pid %d still exists after Stop", start.PID)
	}
	// Sockets are gone; logs stay for the caller.
	if files, want := e.stateFiles(), []string{"ch-events.json", "cloud-hypervisor.log", "console.log", "disk.img"}; !slices.Equal(files, want) {
		t.Errorf("StateDir after Stop = %q, want %q", files, want)
	}
	if err := vm.Stop(ctx); err != nil {
		t.Errorf("second Stop = %v", err)
	}
	if _, err := vm.DialAgent(ctx); !errors.Is(err, hypervisor.ErrNotRunning) {
		t.Errorf("DialAgent after Stop = %v, want ErrNotRunning", err)
	}
	if err := vm.AddDevice(ctx, hypervisor.Device{NIC: &nic}); !errors.Is(err, hypervisor.ErrNotRunning) {
		t.Errorf("AddDevice after Stop = %v, want ErrNotRunning", err)
	}

	// What the fake saw after boot, in order.
	got = nil
	for _, ev := range e.requests()[4:] {
		got = append(got, ev.Endpoint)
	}
	want := []string{"vm.add-disk", "vm.add-net", "vm.remove-device", "vm.remove-device", "vm.shutdown", "vmm.shutdown"}
	if !slices.Equal(got, want) {
		t.Errorf("requests after boot = %q, want %q", got, want)
	}
}

// TestAddNetCarriesFDs checks the hand-written vm.add-net: one tap fd per NIC
// as SCM_RIGHTS, num_queues twice the fds, and no mtu (which would make the
// VMM set it on the tap, needing CAP_NET_ADMIN).
func TestAddNetCarriesFDs(t *testing.T) {
	e := newTestEnv(t, chtest.Config{})
	e.cfg.NICs = append(e.cfg.NICs, testNIC(t, "eth1", 0x04))
	e.launch()

	var nets []chtest.Event
	for _, ev := range e.requests() {
		if ev.Endpoint == "vm.add-net" {
			nets = append(nets, ev)
		}
	}
	if len(nets) != 2 {
		t.Fatalf("saw %d vm.add-net, want 2", len(nets))
	}
	for i, ev := range nets {
		if ev.Status != 204 || ev.FDs != 1 || ev.NumQueues != 2 || !slices.Equal(ev.FDKinds, []string{"fifo"}) {
			t.Errorf("add-net %d: status %d, %d fds %q, num_queues %d; want 204, one fifo fd, 2 queues",
				i, ev.Status, ev.FDs, ev.FDKinds, ev.NumQueues)
		}
		var nc chapi.NetConfig
		if err := json.Unmarshal(ev.Body, &nc); err != nil {
			t.Fatal(err)
		}
		if nc.Mtu != nil || nc.Tap != nil || nc.Id == nil || *nc.Id != e.cfg.NICs[i].ID || *nc.Mac != e.cfg.NICs[i].MAC.String() {
			t.Errorf("add-net %d body = %s", i, ev.Body)
		}
	}
	// The caller keeps its tap open.
	if _, err := e.cfg.NICs[0].Tap.Write([]byte{0}); err != nil {
		t.Errorf("tap unusable after Launch: %v", err)
	}
}

func TestCreateBody(t *testing.T) {
	e := newTestEnv(t, chtest.Config{})
	e.launch()
	var vc chapi.VmConfig
	if err := json.Unmarshal(e.request("vm.create").Body, &vc); err != nil {
		t.Fatal(err)
	}
	vsock := filepath.Join(e.cfg.StateDir, vsockName)
	checks := []struct {
		name string
		ok   bool
	}{
		{"kernel", *vc.Payload.Kernel == e.cfg.Kernel},
		{"initramfs", *vc.Payload.Initramfs == e.cfg.Initramfs},
		{"cmdline", *vc.Payload.Cmdline == "console=ttyS0 quiet"},
		{"vcpus", vc.Cpus.BootVcpus == 2 && vc.Cpus.MaxVcpus == 2},
		{"nested off", vc.Cpus.Nested != nil && !*vc.Cpus.Nested},
		{"memory", vc.Memory.Size == 256<<20 && *vc.Memory.Shared},
		{"vsock", vc.Vsock.Cid == 3 && vc.Vsock.Socket == vsock},
		{"fs", len(*vc.Fs) == 1 && (*vc.Fs)[0].Tag == "pod" && (*vc.Fs)[0].Socket == e.cfg.SharedFS.Socket},
		{"serial", vc.Serial.Mode == chapi.ConsoleModeFile && *vc.Serial.File == e.cfg.ConsoleLog},
		{"console", vc.Console.Mode == chapi.ConsoleModeOff},
		{"rng", vc.Rng.Src == "/dev/urandom"},
		{"balloon reports free pages, never inflated", vc.Balloon != nil && vc.Balloon.Size == 0 && vc.Balloon.FreePageReporting != nil && *vc.Balloon.FreePageReporting},
		{"no nets", vc.Net == nil},
		{"landlock", vc.LandlockEnable != nil && *vc.LandlockEnable},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("vm.create %s wrong: %s", c.name, e.request("vm.create").Body)
		}
	}
}

func TestStopKillsUnresponsiveVMM(t *testing.T) {
	e := newTestEnv(t, chtest.Config{HangOn: []string{"vm.shutdown", "vmm.shutdown"}})
	vm := e.launch()
	pid := vm.State().PID
	ctx, cancel := contextWithTimeout(t, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := vm.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Stop took %s", d)
	}
	if !processGone(pid) {
		t.Errorf("VMM pid %d survived Stop", pid)
	}
	if err := vm.Err(); err != nil {
		t.Errorf("Err after Stop = %v", err)
	}
}

func TestVMMKilledMidSession(t *testing.T) {
	e := newTestEnv(t, chtest.Config{})
	vm := e.launch()
	pid := vm.State().PID
	if err := syscallKill(pid); err != nil {
		t.Fatal(err)
	}
	waitDone(t, vm, 2*time.Second)
	err := vm.Err()
	if !errors.Is(err, hypervisor.ErrNotRunning) {
		t.Fatalf("Err() = %v, want ErrNotRunning", err)
	}
	t.Logf("Err() = %v", err)
	for _, s := range []string{apiSocketName, apiSocketName + ".lock", vsockName} {
		if _, err := os.Stat(filepath.Join(e.cfg.StateDir, s)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind after the VMM died", s)
		}
	}
	if err := vm.Stop(testCtx(t)); err != nil {
		t.Errorf("Stop after crash = %v", err)
	}
	if err := vm.Err(); err != nil {
		t.Errorf("Err after Stop = %v", err)
	}
}
