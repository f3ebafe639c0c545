package cloudhypervisor

import (
	"context"
	"fmt"
	"time"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/hypervisor"
)

// DriverName is the driver's name in configuration and in hypervisor.State.
const DriverName = "cloud-hypervisor"

// Driver launches Cloud Hypervisor VMs. It is safe for concurrent use.
type Driver struct {
	opts Options
}

var _ hypervisor.Driver = (*Driver)(nil)

// New returns a driver; empty option fields take their DefaultOptions value.
func New(opts Options) (*Driver, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("cloud-hypervisor driver: %w", err)
	}
	return &Driver{opts: opts}, nil
}

// Name implements hypervisor.Driver.
func (d *Driver) Name() string { return DriverName }

// Launch implements hypervisor.Driver: validate, then run the boot steps in
// order; when one fails, the undo stack kills the VMM and removes every file
// the driver created.
func (d *Driver) Launch(ctx context.Context, cfg hypervisor.Config) (_ hypervisor.VM, retErr error) {
	p, err := d.plan(cfg)
	if err != nil {
		return nil, fmt.Errorf("launch VM %q: %w", cfg.ID, err)
	}
	if err := ctx.Err(); err != nil {
		// Starting a VMM only to kill it helps nobody.
		return nil, fmt.Errorf("launch VM %q: %w", cfg.ID, err)
	}
	l := &launch{plan: p, opts: &d.opts}
	defer func() {
		if retErr != nil {
			l.undo.Run(launchUndoTimeout, "vm", cfg.ID)
		}
	}()

	start := time.Now()
	klog.InfoS("Launching VM", "vm", cfg.ID, "vcpus", cfg.VCPUs, "memoryMiB", cfg.MemoryMiB, "nics", len(cfg.NICs))
	for _, s := range l.steps() {
		if err := s.fn(ctx); err != nil {
			return nil, fmt.Errorf("launch VM %q: %s: %w", cfg.ID, s.name, l.explain(err))
		}
	}
	vm := newVM(cfg.ID, p.paths, l.proc, l.api, l.diskRoots())
	klog.InfoS("VM running", "vm", cfg.ID, "pid", l.proc.PID, "duration", time.Since(start))
	return vm, nil
}
