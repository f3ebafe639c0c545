package qemu

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/hypervisor"
)

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
