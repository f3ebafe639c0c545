package cloudhypervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/vmmproc"
)

// VM is a running Cloud Hypervisor VM. It is safe for concurrent use.
type VM struct {
	id    string
	paths vmPaths
	proc  *vmmproc.Process
	api   vmmAPI
	// diskRoots are the directories hot-plugged disks must live under
	// (landlock); nil allows any path.
	diskRoots []string

	done   chan struct{} // closed after the VMM exited and its sockets are gone
	stopMu sync.Mutex    // serialises Stop

	mu       sync.Mutex
	stopping bool  // the exit was asked for
	released bool  // Release: the VMM runs on, owned by another handle
	stopped  bool  // Stop completed
	exitErr  error // why the VMM exited on its own
}

var _ hypervisor.VM = (*VM)(nil)

func newVM(id string, paths vmPaths, proc *vmmproc.Process, api vmmAPI, diskRoots []string) *VM {
	v := &VM{id: id, paths: paths, proc: proc, api: api, diskRoots: diskRoots, done: make(chan struct{})}
	go v.watch()
	return v
}

// watch records how the VMM ended and removes its sockets, so that a VMM
// that crashed leaves no more behind than one that was stopped.
func (v *VM) watch() {
	<-v.proc.Done()
	v.mu.Lock()
	if v.released {
		// The VMM still runs: its sockets belong to whoever re-attaches.
		v.mu.Unlock()
		close(v.done)
		return
	}
	if !v.stopping {
		v.exitErr = fmt.Errorf("%w: %s", hypervisor.ErrNotRunning, exitSummary(v.proc, v.logPath()))
		klog.ErrorS(v.exitErr, "VMM exited unexpectedly", "vm", v.id, "pid", v.proc.PID)
	}
	v.mu.Unlock()
	if err := removeFiles(v.paths.sockets()...); err != nil {
		klog.ErrorS(err, "Removing VMM sockets", "vm", v.id)
	}
	close(v.done)
}

// logPath is the VMM log, when this process started the VMM.
func (v *VM) logPath() string {
	if _, err := os.Stat(v.paths.log); err != nil {
		return ""
	}
	return v.paths.log
}

// State implements hypervisor.VM.
func (v *VM) State() hypervisor.State {
	return hypervisor.State{
		Driver:    DriverName,
		ID:        v.id,
		PID:       v.proc.PID,
		StartTime: v.proc.StartTime,
		StateDir:  v.paths.stateDir,
		Extra: map[string]string{
			extraAPISocket: v.paths.apiSocket,
			extraVsock:     v.paths.vsock,
		},
	}
}

// Done implements hypervisor.VM.
func (v *VM) Done() <-chan struct{} { return v.done }

// Err implements hypervisor.VM.
func (v *VM) Err() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stopped {
		return nil
	}
	return v.exitErr
}

func (v *VM) exited() bool {
	select {
	case <-v.proc.Done():
		return true
	default:
		return false
	}
}

// callErr marks err with ErrNotRunning when the VMM is gone, which is the
// likely reason its API failed.
func (v *VM) callErr(err error) error {
	if err != nil && v.exited() && !errors.Is(err, hypervisor.ErrNotRunning) {
		return fmt.Errorf("%w: %w", hypervisor.ErrNotRunning, err)
	}
	return err
}

// DialAgent implements hypervisor.VM over hybrid vsock.
func (v *VM) DialAgent(ctx context.Context) (net.Conn, error) {
	if v.exited() {
		return nil, fmt.Errorf("dial agent of VM %q: %w", v.id, hypervisor.ErrNotRunning)
	}
	conn, err := dialHybridVsock(ctx, v.paths.vsock, AgentVsockPort)
	if err != nil {
		return nil, fmt.Errorf("dial agent of VM %q: %w", v.id, v.callErr(err))
	}
	return conn, nil
}

// AddDevice implements hypervisor.VM.
func (v *VM) AddDevice(ctx context.Context, dev hypervisor.Device) error {
	switch {
	case dev.Disk != nil && dev.NIC == nil:
		return v.addDisk(ctx, dev.Disk)
	case dev.NIC != nil && dev.Disk == nil:
		return v.addNIC(ctx, dev.NIC)
	default:
		return fmt.Errorf("add device to VM %q: %w: exactly one of Disk and NIC must be set", v.id, hypervisor.ErrInvalidConfig)
	}
}

func (v *VM) addDisk(ctx context.Context, d *hypervisor.Disk) error {
	if err := v.checkDisk(d); err != nil {
		return fmt.Errorf("add disk %q to VM %q: %w", d.ID, v.id, err)
	}
	if err := v.api.AddDisk(ctx, diskConfig(d)); err != nil {
		return fmt.Errorf("add disk %q to VM %q: %w", d.ID, v.id, v.callErr(err))
	}
	klog.InfoS("Disk added", "vm", v.id, "device", d.ID, "readOnly", d.ReadOnly)
	return nil
}

func (v *VM) checkDisk(d *hypervisor.Disk) error {
	if err := checkDeviceID(d.ID); err != nil {
		return err
	}
	if !filepath.IsAbs(d.Path) || filepath.Clean(d.Path) != d.Path {
		return fmt.Errorf("%w: path %q is not a clean absolute path", hypervisor.ErrInvalidConfig, d.Path)
	}
	if v.diskRoots == nil {
		return nil
	}
	for _, root := range v.diskRoots {
		if within(d.Path, root) {
			return nil
		}
	}
	return fmt.Errorf("%w: landlock: %q is outside the VM's state directory and the driver's hotplug paths", hypervisor.ErrInvalidConfig, d.Path)
}

func (v *VM) addNIC(ctx context.Context, n *hypervisor.NIC) error {
	if err := checkNIC(n); err != nil {
		return fmt.Errorf("add NIC to VM %q: %w", v.id, err)
	}
	if err := v.api.AddNet(ctx, netConfig(n), []*os.File{n.Tap}); err != nil {
		return fmt.Errorf("add NIC %q to VM %q: %w", n.ID, v.id, v.callErr(err))
	}
	klog.InfoS("NIC added", "vm", v.id, "device", n.ID, "mac", n.MAC.String())
	return nil
}

// RemoveDevice implements hypervisor.VM.
func (v *VM) RemoveDevice(ctx context.Context, id string) error {
	if err := checkDeviceID(id); err != nil {
		return fmt.Errorf("remove device from VM %q: %w", v.id, err)
	}
	if err := v.api.RemoveDevice(ctx, id); err != nil {
		return fmt.Errorf("remove device %q from VM %q: %w", id, v.id, v.callErr(err))
	}
	klog.InfoS("Device removed", "vm", v.id, "device", id)
	return nil
}
