package podvm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/virtiofsd"
	"github.com/podvisor/podvisor/podvm/agent/agentpb"
	"github.com/podvisor/podvisor/podvm/mountns"
)

// VM is a booted pod VM with an authenticated agent session. Its lifetime
// is independent of the request that booted it.
type VM struct {
	id  string
	dir string
	cfg Config

	vmm   hypervisor.VM
	fsd   *virtiofsd.Daemon
	agent *agentConn
	// sharedDir is the pod's shared directory on the host ("" for none).
	// Everything mounted in it lives in mountNS, the VM's own mount
	// namespace (nil for a VM without a shared directory); dropMounts
	// unpins it, which ends those mounts.
	sharedDir  string
	mountNS    *mountns.Namespace
	dropMounts func() error

	done     chan struct{}
	mu       sync.Mutex
	err      error
	stopping bool
	stopOnce sync.Once
	stopErr  error
}

func newVM(m *Manager, b *boot) *VM {
	v := &VM{
		id:    b.spec.ID,
		dir:   b.dir,
		cfg:   m.cfg,
		vmm:   b.vmm,
		fsd:   b.fsd,
		agent: b.agent,
		done:  make(chan struct{}),

		sharedDir: b.spec.SharedDir,
		mountNS:   b.mountNS,
	}
	if b.mountNS != nil {
		pin := b.mountNS.Pin()
		v.dropMounts = func() error { return mountns.Remove(pin) }
	}
	go v.watch()
	return v
}

// watch notices the end of the VM: the VMM process exiting or the agent
// session dying (which, with the agent as PID 1, means the guest is lost).
func (v *VM) watch() {
	var err error
	select {
	case <-v.vmm.Done():
		err = fmt.Errorf("%w: VMM exited: %v", ErrGone, v.vmm.Err())
	case <-v.agent.session.Done():
		err = fmt.Errorf("%w: agent session closed", ErrGone)
	}
	v.mu.Lock()
	if !v.stopping {
		v.err = err
		klog.InfoS("Pod VM lost", "vm", v.id, "err", err)
	}
	v.mu.Unlock()
	close(v.done)
}

// ID is the VM's identifier.
func (v *VM) ID() string { return v.id }

// Agent is the guest agent's control client.
func (v *VM) Agent() agentpb.AgentClient { return v.agent.client }

// SharedDir is the host directory the guest sees at GuestSharedDir.
func (v *VM) SharedDir() string { return v.sharedDir }

// inMountNS runs fn where the VM's shared-directory mounts live: on a
// thread inside its mount namespace, or on the caller's thread for a VM
// without one. Host paths fn resolves are those the namespace sees: a copy
// of the host's mount table from the VM's boot, plus what the host mounted
// since under shared mounts.
func (v *VM) inMountNS(fn func() error) error {
	if v.mountNS == nil {
		return fn()
	}
	return v.mountNS.Run(fn)
}

// inMountNS is VM.inMountNS for a function with a result.
func inMountNS[T any](v *VM, fn func() (T, error)) (T, error) {
	var out T
	err := v.inMountNS(func() (err error) {
		out, err = fn()
		return err
	})
	return out, err
}

// Release lets go of the VM without stopping it, as the daemon does when it
// exits: the VMM, virtiofsd and the guest keep running, and a later
// Manager.Reattach finds them. The handle is unusable afterwards.
func (v *VM) Release() error {
	v.mu.Lock()
	v.stopping = true
	v.mu.Unlock()
	return errors.Join(v.agent.Close(), v.vmm.Release())
}

// VMM is the underlying VMM handle.
func (v *VM) VMM() hypervisor.VM { return v.vmm }

// Done is closed when the VM is gone or its agent session ended.
func (v *VM) Done() <-chan struct{} { return v.done }

// Err says why the VM ended unexpectedly; nil while it runs or after Stop.
func (v *VM) Err() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.err
}

// Stop powers the guest off (gracefully within the configured stop timeout,
// then by force), stops virtiofsd and removes everything the VM had on the
// host. It is idempotent.
func (v *VM) Stop(ctx context.Context) error {
	v.stopOnce.Do(func() {
		v.mu.Lock()
		v.stopping = true
		v.mu.Unlock()
		v.stopErr = v.stop(ctx)
	})
	return v.stopErr
}

func (v *VM) stop(ctx context.Context) error {
	// Cleanup must complete even when the caller has given up.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.cfg.StopTimeout+undoTimeout)
	defer cancel()

	v.powerOff(ctx)
	var errs []error
	forceCtx, cancelForce := context.WithTimeout(ctx, hypervisor.DefaultStopTimeout)
	if err := v.vmm.Stop(forceCtx); err != nil {
		errs = append(errs, fmt.Errorf("stop VMM: %w", err))
	}
	cancelForce()
	if err := v.agent.Close(); err != nil && !isClosedErr(err) {
		klog.V(4).InfoS("Closing agent session", "vm", v.id, "err", err)
	}
	if v.fsd != nil {
		if err := v.fsd.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop virtiofsd: %w", err))
		}
	}
	if v.dropMounts != nil {
		if err := v.dropMounts(); err != nil {
			errs = append(errs, fmt.Errorf("drop mounts of %s: %w", v.sharedDir, err))
		}
	}
	if err := os.RemoveAll(v.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", v.dir, err))
	}
	<-v.done
	klog.InfoS("Pod VM stopped", "vm", v.id)
	return errors.Join(errs...)
}

// powerOff asks the agent to power the guest off and waits for the VMM to
// exit, up to the stop timeout.
func (v *VM) powerOff(ctx context.Context) {
	select {
	case <-v.vmm.Done():
		return
	default:
	}
	ctx, cancel := context.WithTimeout(ctx, v.cfg.StopTimeout)
	defer cancel()
	if _, err := v.agent.client.Shutdown(ctx, &agentpb.Empty{}); err != nil {
		klog.V(2).InfoS("Agent shutdown request failed, stopping the VMM", "vm", v.id, "err", err)
		return
	}
	select {
	case <-v.vmm.Done():
	case <-ctx.Done():
		klog.InfoS("Guest did not power off in time, stopping the VMM", "vm", v.id, "timeout", v.cfg.StopTimeout)
	}
}

func isClosedErr(err error) bool {
	return err != nil && (errors.Is(err, os.ErrClosed) || errors.Is(err, context.Canceled))
}
