package cloudhypervisor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/cloudhypervisor/chapi"
	"github.com/podvisor/podvisor/hypervisor/vmmproc"
)

// Reattach implements hypervisor.Driver. It finds the VMM by PID and start
// time and asks it for vm.info until ctx ends. A VMM whose VM is no longer
// running is of no use to anyone and nobody else holds a handle to it, so it
// is shut down and ErrNotRunning returned. A VMM whose API does not answer is
// left alone: the caller may retry.
func (d *Driver) Reattach(ctx context.Context, st hypervisor.State) (hypervisor.VM, error) {
	paths, err := reattachPaths(st)
	if err != nil {
		return nil, fmt.Errorf("reattach VM %q: %w", st.ID, err)
	}
	proc, err := vmmproc.Attach(st.PID, st.StartTime)
	if err != nil {
		return nil, fmt.Errorf("reattach VM %q: %w: %w", st.ID, hypervisor.ErrNotRunning, err)
	}
	api, err := newAPIClient(paths.apiSocket)
	if err != nil {
		return nil, fmt.Errorf("reattach VM %q: %w", st.ID, err)
	}
	state, err := vmState(ctx, api, proc)
	if apiErr, ok := errors.AsType[*APIError](err); ok && apiErr.Status == http.StatusNotFound {
		state, err = stateNotCreated, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reattach VM %q: %w", st.ID, err)
	}
	roots := diskRoots(st.StateDir, &d.opts)
	if d.opts.DisableLandlock {
		roots = nil
	}
	vm := newVM(st.ID, paths, proc, api, roots)
	if state != chapi.VmStateRunning && state != chapi.VmStatePaused {
		klog.InfoS("Re-attached VM is not running, shutting its VMM down", "vm", st.ID, "state", state)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hypervisor.DefaultStopTimeout)
		defer cancel()
		return nil, errors.Join(
			fmt.Errorf("reattach VM %q: %w: VM state %s", st.ID, hypervisor.ErrNotRunning, state),
			vm.Stop(sctx))
	}
	klog.InfoS("VM re-attached", "vm", st.ID, "pid", st.PID, "state", state)
	return vm, nil
}

// stateNotCreated stands for the 404 a VMM without a VM answers vm.info with.
const stateNotCreated chapi.VmState = "NotCreated"

func reattachPaths(st hypervisor.State) (vmPaths, error) {
	switch {
	case st.Driver != DriverName:
		return vmPaths{}, fmt.Errorf("%w: state of driver %q", hypervisor.ErrInvalidConfig, st.Driver)
	case st.PID <= 0:
		return vmPaths{}, fmt.Errorf("%w: PID %d", hypervisor.ErrInvalidConfig, st.PID)
	case !filepath.IsAbs(st.StateDir):
		return vmPaths{}, fmt.Errorf("%w: StateDir %q is not absolute", hypervisor.ErrInvalidConfig, st.StateDir)
	}
	p := pathsFor(st.StateDir)
	// Paths recorded by the daemon that launched the VM win over today's
	// naming, which may have changed in between.
	for key, dst := range map[string]*string{extraAPISocket: &p.apiSocket, extraVsock: &p.vsock} {
		if s := st.Extra[key]; s != "" {
			if !filepath.IsAbs(s) {
				return vmPaths{}, fmt.Errorf("%w: %s %q is not absolute", hypervisor.ErrInvalidConfig, key, s)
			}
			*dst = s
		}
	}
	return p, nil
}

// vmState asks vm.info until it answers, the VMM exits or ctx ends: right
// after a host reboot of the daemon the VMM may be busy.
func vmState(ctx context.Context, api vmmAPI, proc *vmmproc.Process) (chapi.VmState, error) {
	delay := pollMin
	for {
		info, err := api.Info(ctx)
		if err == nil {
			return info.State, nil
		}
		if _, ok := errors.AsType[*APIError](err); ok {
			return "", err
		}
		select {
		case <-proc.Done():
			return "", fmt.Errorf("%w: %w", hypervisor.ErrNotRunning, err)
		case <-ctx.Done():
			return "", fmt.Errorf("%w (last vm.info: %w)", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, pollMax)
	}
}
