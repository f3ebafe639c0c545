package cloudhypervisor

import (
	"context"
	"fmt"
	"time"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/hypervisor"
)

// Stop implements hypervisor.VM: vm.shutdown, then vmm.shutdown, then wait
// for the process; SIGKILL when ctx (or hypervisor.DefaultStopTimeout, when
// ctx has no deadline) ends first. Stopping a stopped VM returns nil.
func (v *VM) Stop(ctx context.Context) error {
	v.stopMu.Lock()
	defer v.stopMu.Unlock()
	v.mu.Lock()
	v.stopping = true
	v.mu.Unlock()

	select {
	case <-v.done:
	default:
		if err := v.shutdown(ctx); err != nil {
			return fmt.Errorf("stop VM %q: %w", v.id, err)
		}
	}
	v.mu.Lock()
	v.stopped = true
	v.mu.Unlock()
	return nil
}

func (v *VM) shutdown(ctx context.Context) error {
	start := time.Now()
	gctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		gctx, cancel = context.WithTimeout(ctx, hypervisor.DefaultStopTimeout)
		defer cancel()
	}
	// Errors are expected here (the VM may not be running, the VMM may exit
	// before it answers) and change nothing: the wait below decides.
	if err := v.api.ShutdownVM(gctx); err != nil {
		klog.V(2).InfoS("vm.shutdown failed", "vm", v.id, "err", err)
	}
	if err := v.api.ShutdownVMM(gctx); err != nil {
		klog.V(2).InfoS("vmm.shutdown failed", "vm", v.id, "err", err)
	}
	select {
	case <-v.done:
		klog.InfoS("VM stopped", "vm", v.id, "duration", time.Since(start))
		return nil
	case <-gctx.Done():
	}
	klog.InfoS("VMM did not exit in time, killing it", "vm", v.id, "pid", v.proc.PID)
	if err := killAndWait(v.proc); err != nil {
		return err
	}
	<-v.done
	return nil
}
