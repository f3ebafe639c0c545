package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/hypervisor"
)

// unplugTimeout bounds the wait for the guest to release a device (ACPI
// eject); a guest that never answers keeps the device and RemoveDevice
// fails.
const unplugTimeout = 10 * time.Second

// maxBlkSerial is virtio-blk's serial length; the guest finds a hot-plugged
// disk as /dev/disk/by-id/virtio-<serial>.
const maxBlkSerial = 20

// AddDevice implements hypervisor.VM. A disk's file is opened here and
// passed to QEMU as an fd (add-fd), a NIC's tap likewise (getfd): QEMU,
// running unprivileged, never opens host paths for hot-plugged devices.
// The disk's serial is its ID (first 20 bytes).
func (vm *VM) AddDevice(ctx context.Context, dev hypervisor.Device) error {
	vm.hotplugMu.Lock()
	defer vm.hotplugMu.Unlock()
	switch {
	case dev.Disk != nil && dev.NIC == nil:
		if err := vm.addDisk(ctx, dev.Disk); err != nil {
			return fmt.Errorf("add disk %q to VM %q: %w", dev.Disk.ID, vm.id, err)
		}
		klog.InfoS("Disk added", "vm", vm.id, "device", dev.Disk.ID, "readOnly", dev.Disk.ReadOnly)
	case dev.NIC != nil && dev.Disk == nil:
		if err := vm.addNIC(ctx, dev.NIC); err != nil {
			return fmt.Errorf("add NIC %q to VM %q: %w", dev.NIC.ID, vm.id, err)
		}
		klog.InfoS("NIC added", "vm", vm.id, "device", dev.NIC.ID)
	default:
		return fmt.Errorf("add device to VM %q: %w: exactly one of Disk and NIC must be set", vm.id, hypervisor.ErrInvalidConfig)
	}
	return nil
}

func (vm *VM) addDisk(ctx context.Context, d *hypervisor.Disk) (retErr error) {
	if err := validateDisk(d); err != nil {
		return err
	}
	flags := os.O_RDWR
	if d.ReadOnly {
		flags = os.O_RDONLY
	}
	f, err := os.OpenFile(d.Path, flags, 0)
	if err != nil {
		return fmt.Errorf("%w: %w", hypervisor.ErrInvalidConfig, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	protocol := "file"
	switch {
	case fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0:
		protocol = "host_device"
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%w: %s is neither a regular file nor a block device", hypervisor.ErrInvalidConfig, d.Path)
	}
	bus, err := vm.freeBus(ctx)
	if err != nil {
		return err
	}

	node := blockPrefix + d.ID
	var fdset struct {
		ID int `json:"fdset-id"`
	}
	if err := vm.qmp.executeFile(ctx, "add-fd", map[string]any{"opaque": node}, f, &fdset); err != nil {
		return err
	}
	defer vm.undoOnError(ctx, &retErr, "remove-fd", map[string]any{"fdset-id": fdset.ID})
	err = vm.qmp.execute(ctx, "blockdev-add", map[string]any{
		"driver":    "raw",
		"node-name": node,
		"read-only": d.ReadOnly,
		"discard":   "unmap",
		"file": map[string]any{
			"driver":    protocol,
			"filename":  fmt.Sprintf("/dev/fdset/%d", fdset.ID),
			"read-only": d.ReadOnly,
		},
	}, nil)
	if err != nil {
		return err
	}
	defer vm.undoOnError(ctx, &retErr, "blockdev-del", map[string]any{"node-name": node})
	serial := d.ID
	if len(serial) > maxBlkSerial {
		serial = serial[:maxBlkSerial]
	}
	return vm.qmp.execute(ctx, "device_add", map[string]any{
		"driver": "virtio-blk-pci",
		"id":     devicePrefix + d.ID,
		"drive":  node,
		"serial": serial,
		"bus":    bus,
	}, nil)
}

func (vm *VM) addNIC(ctx context.Context, n *hypervisor.NIC) (retErr error) {
	if err := validateNIC(n); err != nil {
		return err
	}
	bus, err := vm.freeBus(ctx)
	if err != nil {
		return err
	}
	fdName := tapFdPrefix + n.ID
	if err := vm.qmp.executeFile(ctx, "getfd", map[string]any{"fdname": fdName}, n.Tap, nil); err != nil {
		return err
	}
	netdev := netdevPrefix + n.ID
	// netdev_add takes the named fd over; only a failed one leaves it.
	if err := vm.qmp.execute(ctx, "netdev_add", map[string]any{"type": "tap", "id": netdev, "fd": fdName}, nil); err != nil {
		vm.undo(ctx, "closefd", map[string]any{"fdname": fdName})
		return err
	}
	defer vm.undoOnError(ctx, &retErr, "netdev_del", map[string]any{"id": netdev})
	args := map[string]any{
		"driver":  "virtio-net-pci",
		"id":      devicePrefix + n.ID,
		"netdev":  netdev,
		"mac":     n.MAC.String(),
		"romfile": "",
		"bus":     bus,
	}
	if n.MTU > 0 {
		args["host_mtu"] = n.MTU
	}
	return vm.qmp.execute(ctx, "device_add", args, nil)
}

// freeBus picks the bus a hot-plugged device goes on: pc's root bus, or on
// q35 the first root port nothing is plugged into. QEMU is asked rather
// than remembered, so a re-attached VM gets the same answer.
func (vm *VM) freeBus(ctx context.Context) (string, error) {
	if vm.layout.machine != MachineQ35 {
		return "pci.0", nil
	}
	for i := 1; i <= vm.layout.slots; i++ {
		port := fmt.Sprintf(hotplugPortFmt, i)
		var props []struct {
			Name string `json:"name"`
		}
		// A root port's secondary bus is named after the port; it has a
		// child[N] link for each device plugged into it.
		path := "/machine/peripheral/" + port + "/" + port
		if err := vm.qmp.execute(ctx, "qom-list", map[string]any{"path": path}, &props); err != nil {
			return "", err
		}
		used := false
		for _, p := range props {
			used = used || strings.HasPrefix(p.Name, "child[")
		}
		if !used {
			return port, nil
		}
	}
	return "", fmt.Errorf("%w: all %d hot-plug slots are in use", hypervisor.ErrUnsupported, vm.layout.slots)
}

// RemoveDevice implements hypervisor.VM: ask the guest to release the
// device, wait until QEMU reports it gone, then drop its backend. Removing
// an ID that is not plugged in succeeds (and clears any backend a failed
// earlier removal left).
func (vm *VM) RemoveDevice(ctx context.Context, id string) error {
	vm.hotplugMu.Lock()
	defer vm.hotplugMu.Unlock()
	if err := vm.removeDevice(ctx, id); err != nil {
		return fmt.Errorf("remove device %q from VM %q: %w", id, vm.id, err)
	}
	klog.InfoS("Device removed", "vm", vm.id, "device", id)
	return nil
}

func (vm *VM) removeDevice(ctx context.Context, id string) error {
	if !deviceIDPattern.MatchString(id) {
		return fmt.Errorf("%w: device ID %q must match %s", hypervisor.ErrInvalidConfig, id, deviceIDPattern)
	}
	qid := devicePrefix + id
	path := "/machine/peripheral/" + qid
	var typ string
	err := vm.qmp.execute(ctx, "qom-get", map[string]any{"path": path, "property": "type"}, &typ)
	if isQMPClass(err, "DeviceNotFound") {
		return vm.removeBackends(ctx, id, "")
	}
	if err != nil {
		return err
	}
	if vm.layout.machine == MachineQ35 {
		var bus string
		if err := vm.qmp.execute(ctx, "qom-get", map[string]any{"path": path, "property": "parent_bus"}, &bus); err != nil {
			return err
		}
		if !strings.HasPrefix(bus, "/machine/peripheral/hp") {
			return fmt.Errorf("%w: device was plugged at boot on a bus without hot-plug", hypervisor.ErrUnsupported)
		}
	}
	if err := vm.unplug(ctx, qid); err != nil {
		return err
	}
	return vm.removeBackends(ctx, id, typ)
}

// unplug deletes a device and waits for the guest to let it go.
func (vm *VM) unplug(ctx context.Context, qid string) error {
	w := vm.qmp.watch("DEVICE_DELETED", func(data json.RawMessage) bool {
		var d struct {
			Device string `json:"device"`
		}
		return json.Unmarshal(data, &d) == nil && d.Device == qid
	})
	defer vm.qmp.unwatch(w)
	if err := vm.qmp.execute(ctx, "device_del", map[string]any{"id": qid}, nil); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, unplugTimeout)
	defer cancel()
	if _, err := vm.qmp.waitEvent(wctx, w); err != nil {
		return fmt.Errorf("guest did not release the device: %w", err)
	}
	return nil
}

// removeBackends drops what backed a device of QEMU type typ; with typ
// empty (device already gone) it drops whichever backend exists.
func (vm *VM) removeBackends(ctx context.Context, id, typ string) error {
	var errs []error
	if typ == "" || typ == "virtio-blk-pci" {
		errs = append(errs, ignoreMissing(vm.qmp.execute(ctx, "blockdev-del", map[string]any{"node-name": blockPrefix + id}, nil)))
		errs = append(errs, vm.removeFdset(ctx, blockPrefix+id))
	}
	if typ == "" || typ == "virtio-net-pci" {
		errs = append(errs, ignoreMissing(vm.qmp.execute(ctx, "netdev_del", map[string]any{"id": netdevPrefix + id}, nil)))
	}
	return errors.Join(errs...)
}

// removeFdset closes the fd set add-fd created for a disk, found by its
// opaque tag.
func (vm *VM) removeFdset(ctx context.Context, opaque string) error {
	var sets []struct {
		ID  int `json:"fdset-id"`
		FDs []struct {
			Opaque string `json:"opaque"`
		} `json:"fds"`
	}
	if err := vm.qmp.execute(ctx, "query-fdsets", nil, &sets); err != nil {
		return err
	}
	for _, s := range sets {
		for _, fd := range s.FDs {
			if fd.Opaque == opaque {
				if err := vm.qmp.execute(ctx, "remove-fd", map[string]any{"fdset-id": s.ID}, nil); err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
}

// ignoreMissing treats "no such backend" as done: removal is idempotent.
// QEMU reports a missing netdev as DeviceNotFound but a missing block node
// only as a GenericError, recognisable by its text alone.
func ignoreMissing(err error) error {
	if err == nil || isQMPClass(err, "DeviceNotFound") {
		return nil
	}
	var qe *qmpError
	if errors.As(err, &qe) && qe.Class == "GenericError" &&
		(strings.Contains(qe.Desc, "Failed to find node") || strings.Contains(qe.Desc, "not found")) {
		return nil
	}
	return err
}

// undoOnError runs a QMP cleanup command when *errp is set, for the
// deferred unwinding of a half-done hot-plug.
func (vm *VM) undoOnError(ctx context.Context, errp *error, cmd string, args map[string]any) {
	if *errp != nil {
		vm.undo(ctx, cmd, args)
	}
}

// undo runs a cleanup command without ctx's cancellation: ctx ending may be
// what failed the hot-plug.
func (vm *VM) undo(ctx context.Context, cmd string, args map[string]any) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := vm.qmp.execute(ctx, cmd, args, nil); err != nil {
		klog.ErrorS(err, "Hot-plug cleanup failed", "vm", vm.id, "command", cmd)
	}
}
