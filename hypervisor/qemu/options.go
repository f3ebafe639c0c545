package qemu

import (
	"fmt"
	"path/filepath"

	"github.com/podvisor/podvisor/hypervisor"
)

// Machine types the driver knows how to hot-plug into.
const (
	// MachineQ35 hot-plugs behind pre-created PCIe root ports
	// (Options.HotplugSlots). It reaches the guest's init fastest here.
	MachineQ35 = "q35"
	// MachinePC (i440fx) hot-plugs on its root PCI bus, up to its free
	// slots, without pre-created ports.
	MachinePC = "pc"
)

// Options configure the driver for every VM it launches.
type Options struct {
	// Binary is the QEMU system emulator: an absolute path, or a name
	// looked up in PATH at each Launch.
	Binary string `toml:"binary"`
	// Machine is MachineQ35 or MachinePC.
	Machine string `toml:"machine"`
	// Firmware, when set, replaces QEMU's default BIOS (SeaBIOS), e.g.
	// /usr/share/qemu/qboot.rom, which hands over to -kernel sooner.
	Firmware string `toml:"firmware"`
	// HotplugSlots is the number of devices that can be hot-plugged at
	// once on q35 (one PCIe root port each); ignored on pc.
	HotplugSlots int `toml:"hotplug_slots"`
}

// DefaultOptions are the options of a production host.
func DefaultOptions() Options {
	return Options{Binary: "qemu-system-x86_64", Machine: MachineQ35, HotplugSlots: 4}
}

// maxHotplugSlots keeps root ports within what the guest firmware can give
// bus numbers and windows to without slowing the boot.
const maxHotplugSlots = 16

// Validate checks o; empty fields are filled in from DefaultOptions first.
func (o Options) Validate() error {
	o = o.withDefaults()
	switch {
	case o.Machine != MachineQ35 && o.Machine != MachinePC:
		return fmt.Errorf("%w: machine %q is not %q or %q", hypervisor.ErrInvalidConfig, o.Machine, MachineQ35, MachinePC)
	case o.HotplugSlots < 0 || o.HotplugSlots > maxHotplugSlots:
		return fmt.Errorf("%w: hotplug_slots %d out of range 0-%d", hypervisor.ErrInvalidConfig, o.HotplugSlots, maxHotplugSlots)
	case o.Firmware != "" && !filepath.IsAbs(o.Firmware):
		return fmt.Errorf("%w: firmware %q is not an absolute path", hypervisor.ErrInvalidConfig, o.Firmware)
	}
	return nil
}

// withDefaults fills empty fields. A zero HotplugSlots means the default:
// a q35 VM without any root port could never hot-plug.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Binary == "" {
		o.Binary = d.Binary
	}
	if o.Machine == "" {
		o.Machine = d.Machine
	}
	if o.HotplugSlots == 0 {
		o.HotplugSlots = d.HotplugSlots
	}
	return o
}
