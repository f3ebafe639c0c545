// Package qemu is the QEMU VMM driver: it runs each VM in its own
// unprivileged qemu-system-x86_64 process, under KVM or, where hardware
// virtualization is unusable, TCG, and controls it over QMP. The agent
// channel is a virtio-serial port (there is no vhost-vsock without KVM),
// the pod's shared directory a vhost-user-fs device served by virtiofsd.
package qemu

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/vmmproc"
)

// DriverName is the driver's name in configuration and in hypervisor.State.
const DriverName = "qemu"

// State.Extra keys: the layout a VM was launched with, which hot-plug must
// follow even if the driver's options changed since.
const (
	extraMachine      = "machine"
	extraHotplugSlots = "hotplugSlots"
)

// Driver launches QEMU VMs. It is safe for concurrent use.
type Driver struct {
	opts Options
}

var _ hypervisor.Driver = (*Driver)(nil)

// New returns a driver; empty option fields take their DefaultOptions
// value. Options are validated by Launch, before anything is started.
func New(opts Options) *Driver {
	return &Driver{opts: opts.withDefaults()}
}

// Name implements hypervisor.Driver.
func (d *Driver) Name() string { return DriverName }

// Launch implements hypervisor.Driver: validate, then run the launch steps
// in order; when one fails, the undo stack kills QEMU and removes every
// file the driver created.
func (d *Driver) Launch(ctx context.Context, cfg hypervisor.Config) (_ hypervisor.VM, retErr error) {
	if err := d.opts.Validate(); err != nil {
		return nil, fmt.Errorf("launch VM %q: %w", cfg.ID, err)
	}
	if err := validate(&cfg); err != nil {
		return nil, fmt.Errorf("launch VM %q: %w", cfg.ID, err)
	}
	l := &launch{cfg: &cfg, opts: &d.opts, paths: pathsIn(cfg.StateDir)}
	defer func() {
		if retErr != nil {
			l.undo.Run(launchUndoTimeout, "vm", cfg.ID)
		}
	}()

	start := time.Now()
	klog.InfoS("Launching VM", "vm", cfg.ID, "vcpus", cfg.VCPUs, "memoryMiB", cfg.MemoryMiB,
		"nics", len(cfg.NICs), "kvm", cfg.KVM, "machine", d.opts.Machine)
	for _, s := range l.steps() {
		if err := s.fn(ctx); err != nil {
			return nil, fmt.Errorf("launch VM %q: %s: %w", cfg.ID, s.name, l.explain(err))
		}
	}
	vm := newVM(cfg.ID, cfg.StateDir, l.proc, l.qmp, layout{machine: d.opts.Machine, slots: d.opts.HotplugSlots})
	klog.InfoS("VM running", "vm", cfg.ID, "pid", l.proc.PID, "duration", time.Since(start))
	return vm, nil
}

// Reattach implements hypervisor.Driver: find the QEMU process by PID and
// start time and take over its QMP socket (QEMU serves one QMP client at a
// time; the previous daemon's connection died with it).
func (d *Driver) Reattach(ctx context.Context, st hypervisor.State) (hypervisor.VM, error) {
	if st.Driver != DriverName || st.PID <= 0 || st.ID == "" || st.StateDir == "" {
		return nil, fmt.Errorf("reattach VM %q: %w: not a state of a %s VM", st.ID, hypervisor.ErrInvalidConfig, DriverName)
	}
	lay := layout{machine: d.opts.Machine, slots: d.opts.HotplugSlots}
	if m := st.Extra[extraMachine]; m != "" {
		lay.machine = m
	}
	if s, err := strconv.Atoi(st.Extra[extraHotplugSlots]); err == nil {
		lay.slots = s
	}
	proc, err := vmmproc.Attach(st.PID, st.StartTime)
	if err != nil {
		return nil, fmt.Errorf("reattach VM %q: %v: %w", st.ID, err, hypervisor.ErrNotRunning)
	}
	p := pathsIn(st.StateDir)
	qmp, err := dialQMP(ctx, p.qmp, st.ID)
	if err != nil {
		select {
		case <-proc.Done():
			return nil, fmt.Errorf("reattach VM %q: %v: %w", st.ID, err, hypervisor.ErrNotRunning)
		default:
		}
		return nil, fmt.Errorf("reattach VM %q: %w", st.ID, err)
	}
	klog.InfoS("Reattached VM", "vm", st.ID, "pid", st.PID)
	return newVM(st.ID, st.StateDir, proc, qmp, lay), nil
}
