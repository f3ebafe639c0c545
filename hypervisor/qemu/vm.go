package qemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/vmmproc"
)

// layout is what hot-plug needs to know of a VM's machine.
type layout struct {
	machine string
	slots   int // pcie-root-ports on q35
}

// VM is a running QEMU VM.
type VM struct {
	id       string
	stateDir string
	paths    paths
	proc     *vmmproc.Process
	qmp      *qmpClient
	layout   layout

	// hotplugMu runs one AddDevice/RemoveDevice at a time, so that two
	// never pick the same free root port.
	hotplugMu sync.Mutex

	mu       sync.Mutex
	stopping bool  // Stop was called: the exit is not an error
	exitErr  error // why QEMU exited, set before done is closed
	done     chan struct{}
}

var _ hypervisor.VM = (*VM)(nil)

func newVM(id, stateDir string, proc *vmmproc.Process, qmp *qmpClient, lay layout) *VM {
	vm := &VM{
		id: id, stateDir: stateDir, paths: pathsIn(stateDir),
		proc: proc, qmp: qmp, layout: lay,
		done: make(chan struct{}),
	}
	go vm.watch()
	return vm
}

// watch waits for QEMU to exit and records why.
func (vm *VM) watch() {
	<-vm.proc.Done()
	vm.qmp.close()
	msg := "QEMU exited"
	if err := vm.proc.Err(); err != nil {
		msg += ": " + err.Error()
	}
	if r := vm.qmp.shutdownReason(); r != "" {
		msg += " after guest shutdown (" + r + ")"
	}
	if tail := logTail(vm.paths.log); tail != "" {
		msg += "; log: " + tail
	}
	err := fmt.Errorf("VM %q: %s: %w", vm.id, msg, hypervisor.ErrNotRunning)
	vm.mu.Lock()
	vm.exitErr = err
	stopping := vm.stopping
	vm.mu.Unlock()
	if !stopping {
		klog.InfoS("VMM exited", "vm", vm.id, "pid", vm.proc.PID, "reason", msg)
	}
	close(vm.done)
}

// State implements hypervisor.VM.
func (vm *VM) State() hypervisor.State {
	return hypervisor.State{
		Driver:    DriverName,
		ID:        vm.id,
		PID:       vm.proc.PID,
		StartTime: vm.proc.StartTime,
		StateDir:  vm.stateDir,
		Extra: map[string]string{
			extraMachine:      vm.layout.machine,
			extraHotplugSlots: strconv.Itoa(vm.layout.slots),
		},
	}
}

// DialAgent implements hypervisor.VM. The agent port is a virtio-serial
// port behind a unix socket, and QEMU serves one client at a time: a second
// connection is accepted by the kernel but carries nothing until the first
// is closed. Callers must close the previous connection first.
func (vm *VM) DialAgent(ctx context.Context) (net.Conn, error) {
	select {
	case <-vm.done:
		return nil, fmt.Errorf("dial agent of VM %q: %w", vm.id, hypervisor.ErrNotRunning)
	default:
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", vm.paths.agent)
	if err != nil {
		return nil, fmt.Errorf("dial agent of VM %q: %w", vm.id, err)
	}
	return c, nil
}

// Stop implements hypervisor.VM. The guest is not asked to power off
// (its agent does that on the host's request over its own channel): QMP
// quit ends QEMU at once, and QEMU is killed if it has not exited when ctx
// ends or after hypervisor.DefaultStopTimeout.
func (vm *VM) Stop(ctx context.Context) error {
	vm.mu.Lock()
	vm.stopping = true
	vm.mu.Unlock()
	select {
	case <-vm.done:
	default:
		vm.quit(ctx)
	}
	if err := removeFiles(vm.paths.sockets()...); err != nil {
		return fmt.Errorf("stop VM %q: %w", vm.id, err)
	}
	return nil
}

func (vm *VM) quit(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, hypervisor.DefaultStopTimeout)
	defer cancel()
	err := vm.qmp.execute(ctx, "quit", nil, nil)
	// QEMU may exit before its reply is out: a closed connection is
	// success here.
	if err != nil && !errors.Is(err, hypervisor.ErrNotRunning) {
		klog.InfoS("QMP quit failed, killing QEMU", "vm", vm.id, "err", err)
		vm.proc.Kill()
	}
	select {
	case <-vm.done:
	case <-ctx.Done():
		klog.InfoS("QEMU did not exit in time, killing it", "vm", vm.id, "pid", vm.proc.PID)
		vm.proc.Kill()
		<-vm.done
	}
	klog.InfoS("VM stopped", "vm", vm.id)
}

// Done implements hypervisor.VM.
func (vm *VM) Done() <-chan struct{} { return vm.done }

// Err implements hypervisor.VM.
func (vm *VM) Err() error {
	select {
	case <-vm.done:
	default:
		return nil
	}
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.stopping {
		return nil
	}
	return vm.exitErr
}
