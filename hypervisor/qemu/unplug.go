package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/hypervisor"
)

// unplugTimeout bounds the wait for the guest to release a device (ACPI
// eject); a guest that never answers keeps the device and RemoveDevice
// fails.
const unplugTimeout = 10 * time.Second

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
