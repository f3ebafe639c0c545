package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podvisor/podvisor/hypervisor"
)

// fakeMachine models the QEMU state hot-plug touches: devices on buses,
// block nodes, netdevs, fd sets and named fds.
type fakeMachine struct {
	mu        sync.Mutex
	devices   map[string]fakeDevice // by qdev id
	nodes     map[string]bool
	netdevs   map[string]bool
	fdsets    map[int]string // fdset id → opaque
	namedFDs  map[string]bool
	nextFdset int
	// stuck makes the guest ignore unplug requests.
	stuck bool
	// failDeviceAdd makes device_add fail.
	failDeviceAdd bool
}

type fakeDevice struct {
	typ, bus string
	args     map[string]any
}

func newFakeMachine() *fakeMachine {
	return &fakeMachine{
		devices: map[string]fakeDevice{
			// a NIC plugged at boot, on the root complex
			"dev-boot0": {typ: "virtio-net-pci", bus: "/machine/q35/pcie.0"},
		},
		nodes: map[string]bool{}, netdevs: map[string]bool{"net-boot0": true},
		fdsets: map[int]string{}, namedFDs: map[string]bool{}, nextFdset: 1,
	}
}

func genericError(format string, args ...any) fakeAnswer {
	return fakeAnswer{err: &qmpError{Class: "GenericError", Desc: fmt.Sprintf(format, args...)}}
}

func (m *fakeMachine) handle(cmd fakeCommand) fakeAnswer {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, fd := range cmd.fds {
		unix.Close(fd)
	}
	var a map[string]any
	_ = json.Unmarshal(cmd.Arguments, &a)
	str := func(k string) string { s, _ := a[k].(string); return s }
	switch cmd.Execute {
	case "qom-list":
		port := strings.TrimPrefix(str("path"), "/machine/peripheral/")
		port, _, _ = strings.Cut(port, "/")
		props := []map[string]string{{"name": "type"}, {"name": "hotplug-handler"}}
		for _, d := range m.devices {
			if d.bus == "/machine/peripheral/"+port+"/"+port {
				props = append(props, map[string]string{"name": "child[0]"})
			}
		}
		return fakeAnswer{ret: props}
	case "qom-get":
		id := strings.TrimPrefix(str("path"), "/machine/peripheral/")
		d, ok := m.devices[id]
		if !ok {
			return fakeAnswer{err: &qmpError{Class: "DeviceNotFound", Desc: fmt.Sprintf("Device '%s' not found", id)}}
		}
		if str("property") == "parent_bus" {
			return fakeAnswer{ret: d.bus}
		}
		return fakeAnswer{ret: d.typ}
	case "add-fd":
		if len(cmd.fds) != 1 {
			return genericError("No file descriptor supplied via SCM_RIGHTS")
		}
		id := m.nextFdset
		m.nextFdset++
		m.fdsets[id] = str("opaque")
		return fakeAnswer{ret: map[string]any{"fdset-id": id, "fd": 30}}
	case "remove-fd":
		id := int(a["fdset-id"].(float64))
		if _, ok := m.fdsets[id]; !ok {
			return genericError("File descriptor named 'fdset-id:%d' not found", id)
		}
		delete(m.fdsets, id)
	case "query-fdsets":
		var sets []map[string]any
		for id, opaque := range m.fdsets {
			sets = append(sets, map[string]any{"fdset-id": id, "fds": []map[string]any{{"fd": 30, "opaque": opaque}}})
		}
		return fakeAnswer{ret: sets}
	case "blockdev-add":
		file, _ := a["file"].(map[string]any)
		if fn, _ := file["filename"].(string); !strings.HasPrefix(fn, "/dev/fdset/") {
			return genericError("unexpected filename %q", fn)
		}
		m.nodes[str("node-name")] = true
	case "blockdev-del":
		if !m.nodes[str("node-name")] {
			return genericError("Failed to find node with node-name='%s'", str("node-name"))
		}
		delete(m.nodes, str("node-name"))
	case "getfd":
		if len(cmd.fds) != 1 {
			return genericError("No file descriptor supplied via SCM_RIGHTS")
		}
		m.namedFDs[str("fdname")] = true
	case "closefd":
		delete(m.namedFDs, str("fdname"))
	case "netdev_add":
		if !m.namedFDs[str("fd")] {
			return genericError("File descriptor named '%s' has not been found", str("fd"))
		}
		delete(m.namedFDs, str("fd"))
		m.netdevs[str("id")] = true
	case "netdev_del":
		if !m.netdevs[str("id")] {
			return fakeAnswer{err: &qmpError{Class: "DeviceNotFound", Desc: fmt.Sprintf("Device '%s' not found", str("id"))}}
		}
		delete(m.netdevs, str("id"))
	case "device_add":
		if m.failDeviceAdd {
			return genericError("Bus '%s' does not support hotplugging", str("bus"))
		}
		id := str("id")
		if _, ok := m.devices[id]; ok {
			return genericError("Duplicate device ID '%s'", id)
		}
		bus := "/machine/peripheral/" + str("bus") + "/" + str("bus")
		m.devices[id] = fakeDevice{typ: str("driver"), bus: bus, args: a}
	case "device_del":
		id := str("id")
		if _, ok := m.devices[id]; !ok {
			return fakeAnswer{err: &qmpError{Class: "DeviceNotFound", Desc: fmt.Sprintf("Device '%s' not found", id)}}
		}
		if m.stuck {
			return fakeAnswer{}
		}
		delete(m.devices, id)
		return fakeAnswer{after: []string{
			fmt.Sprintf(`{"event": "DEVICE_DELETED", "data": {"path": "/machine/peripheral/%s/virtio-backend"}}`, id),
			fmt.Sprintf(`{"event": "DEVICE_DELETED", "data": {"device": "%s", "path": "/machine/peripheral/%s"}}`, id, id),
		}}
	default:
		return fakeAnswer{err: &qmpError{Class: "CommandNotFound", Desc: "The command " + cmd.Execute + " has not been found"}}
	}
	return fakeAnswer{}
}

// locked runs f with m's lock held: the fake serves from its own goroutine.
func (m *fakeMachine) locked(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f()
}

func fakeVM(t *testing.T, m *fakeMachine, lay layout) (*VM, *fakeQMP) {
	t.Helper()
	s, q := connectFake(t, m.handle)
	return &VM{id: "test", qmp: q, layout: lay}, s
}

func testDisk(t *testing.T, id string) *hypervisor.Disk {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	return &hypervisor.Disk{ID: id, Path: p}
}

func testNIC(t *testing.T, id string) *hypervisor.NIC {
	return &hypervisor.NIC{ID: id, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 9}, MTU: 1400, Tap: devNull(t)}
}

func TestHotplugDiskAndNIC(t *testing.T) {
	m := newFakeMachine()
	vm, s := fakeVM(t, m, layout{machine: MachineQ35, slots: 2})
	ctx := testCtx(t)

	if err := vm.AddDevice(ctx, hypervisor.Device{Disk: testDisk(t, "data-volume-number-one")}); err != nil {
		t.Fatalf("add disk: %v", err)
	}
	if err := vm.AddDevice(ctx, hypervisor.Device{NIC: testNIC(t, "eth1")}); err != nil {
		t.Fatalf("add NIC: %v", err)
	}
	var disk, nic fakeDevice
	m.locked(func() { disk, nic = m.devices["dev-data-volume-number-one"], m.devices["dev-eth1"] })
	if disk.bus != "/machine/peripheral/hp1/hp1" || nic.bus != "/machine/peripheral/hp2/hp2" {
		t.Errorf("devices on buses %q and %q, want hp1 and hp2", disk.bus, nic.bus)
	}
	if disk.args["serial"] != "data-volume-number-o" || disk.args["drive"] != "blk-data-volume-number-one" {
		t.Errorf("disk device args: %v", disk.args)
	}
	if nic.args["host_mtu"] != float64(1400) || nic.args["mac"] != "02:00:00:00:00:09" || nic.args["netdev"] != "net-eth1" {
		t.Errorf("NIC device args: %v", nic.args)
	}
	if err := vm.AddDevice(ctx, hypervisor.Device{Disk: testDisk(t, "third")}); !errors.Is(err, hypervisor.ErrUnsupported) {
		t.Errorf("third device with two slots: %v, want ErrUnsupported", err)
	}

	if err := vm.RemoveDevice(ctx, "data-volume-number-one"); err != nil {
		t.Fatalf("remove disk: %v", err)
	}
	if err := vm.RemoveDevice(ctx, "eth1"); err != nil {
		t.Fatalf("remove NIC: %v", err)
	}
	m.locked(func() {
		if len(m.nodes) != 0 || len(m.fdsets) != 0 || m.netdevs["net-eth1"] || len(m.namedFDs) != 0 {
			t.Errorf("backends left: nodes %v fdsets %v netdevs %v fds %v", m.nodes, m.fdsets, m.netdevs, m.namedFDs)
		}
	})
	// The freed slot is found again.
	if err := vm.AddDevice(ctx, hypervisor.Device{Disk: testDisk(t, "again")}); err != nil {
		t.Fatalf("add after remove: %v", err)
	}
	m.locked(func() {
		if m.devices["dev-again"].bus != "/machine/peripheral/hp1/hp1" {
			t.Errorf("freed slot not reused: %q", m.devices["dev-again"].bus)
		}
	})
	t.Logf("commands: %v", s.executed())
}

func TestHotplugPCUsesRootBus(t *testing.T) {
	m := newFakeMachine()
	vm, s := fakeVM(t, m, layout{machine: MachinePC})
	if err := vm.AddDevice(testCtx(t), hypervisor.Device{Disk: testDisk(t, "d")}); err != nil {
		t.Fatal(err)
	}
	m.locked(func() {
		if bus := m.devices["dev-d"].args["bus"]; bus != "pci.0" {
			t.Errorf("bus = %v, want pci.0", bus)
		}
	})
	for _, c := range s.executed() {
		if c == "qom-list" {
			t.Errorf("pc looked for a root port")
		}
	}
}

func TestHotplugFailedDeviceAddUnwinds(t *testing.T) {
	m := newFakeMachine()
	m.failDeviceAdd = true
	vm, _ := fakeVM(t, m, layout{machine: MachineQ35, slots: 1})
	ctx := testCtx(t)
	if err := vm.AddDevice(ctx, hypervisor.Device{Disk: testDisk(t, "d")}); err == nil {
		t.Fatal("AddDevice succeeded")
	}
	if err := vm.AddDevice(ctx, hypervisor.Device{NIC: testNIC(t, "n")}); err == nil {
		t.Fatal("AddDevice succeeded")
	}
	m.locked(func() {
		if len(m.nodes) != 0 || len(m.fdsets) != 0 || m.netdevs["net-n"] || len(m.namedFDs) != 0 {
			t.Errorf("backends left: nodes %v fdsets %v netdevs %v fds %v", m.nodes, m.fdsets, m.netdevs, m.namedFDs)
		}
	})
}

func TestRemoveDeviceIdempotent(t *testing.T) {
	m := newFakeMachine()
	vm, _ := fakeVM(t, m, layout{machine: MachineQ35, slots: 1})
	// A disk whose device is gone but whose backend a failed removal left.
	m.locked(func() {
		m.nodes["blk-d"] = true
		m.fdsets[7] = "blk-d"
	})
	if err := vm.RemoveDevice(testCtx(t), "d"); err != nil {
		t.Fatalf("RemoveDevice: %v", err)
	}
	m.locked(func() {
		if len(m.nodes) != 0 || len(m.fdsets) != 0 {
			t.Errorf("backends left: %v %v", m.nodes, m.fdsets)
		}
	})
	if err := vm.RemoveDevice(testCtx(t), "never-added"); err != nil {
		t.Fatalf("RemoveDevice of an unknown ID: %v", err)
	}
}

func TestRemoveBootNICUnsupportedOnQ35(t *testing.T) {
	vm, _ := fakeVM(t, newFakeMachine(), layout{machine: MachineQ35, slots: 1})
	if err := vm.RemoveDevice(testCtx(t), "boot0"); !errors.Is(err, hypervisor.ErrUnsupported) {
		t.Fatalf("RemoveDevice = %v, want ErrUnsupported", err)
	}
}

func TestRemoveDeviceGuestNeverReleases(t *testing.T) {
	m := newFakeMachine()
	vm, _ := fakeVM(t, m, layout{machine: MachineQ35, slots: 1})
	if err := vm.AddDevice(testCtx(t), hypervisor.Device{Disk: testDisk(t, "d")}); err != nil {
		t.Fatal(err)
	}
	m.locked(func() { m.stuck = true })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := vm.RemoveDevice(ctx, "d")
	if err == nil || !strings.Contains(err.Error(), "did not release") {
		t.Fatalf("RemoveDevice = %v, want a release timeout", err)
	}
	m.locked(func() {
		if !m.nodes["blk-d"] {
			t.Errorf("backend dropped while the guest still holds the device")
		}
	})
}

func TestAddDeviceInvalid(t *testing.T) {
	vm, s := fakeVM(t, newFakeMachine(), layout{machine: MachineQ35, slots: 1})
	ctx := testCtx(t)
	for name, dev := range map[string]hypervisor.Device{
		"neither":       {},
		"both":          {Disk: testDisk(t, "d"), NIC: testNIC(t, "n")},
		"bad disk ID":   {Disk: &hypervisor.Disk{ID: "a b", Path: "/x"}},
		"relative path": {Disk: &hypervisor.Disk{ID: "d", Path: "disk.img"}},
		"missing file":  {Disk: &hypervisor.Disk{ID: "d", Path: "/nonexistent/disk.img"}},
		"NIC no MAC":    {NIC: &hypervisor.NIC{ID: "n", Tap: devNull(t)}},
	} {
		if err := vm.AddDevice(ctx, dev); !errors.Is(err, hypervisor.ErrInvalidConfig) {
			t.Errorf("%s: AddDevice = %v, want ErrInvalidConfig", name, err)
		}
	}
	if cmds := s.executed(); len(cmds) != 1 {
		t.Errorf("invalid devices reached QEMU: %v", cmds)
	}
}
