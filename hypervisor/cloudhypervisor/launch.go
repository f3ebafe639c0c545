package cloudhypervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/hypervisor/cloudhypervisor/chapi"
	"github.com/podvisor/podvisor/hypervisor/undo"
	"github.com/podvisor/podvisor/hypervisor/vmmproc"
)

// Polling bounds while the VMM comes up. Its API answers within milliseconds
// of exec, so start fast and back off.
const (
	pollMin     = 5 * time.Millisecond
	pollMax     = 100 * time.Millisecond
	pingTimeout = time.Second
)

// launch is the state of one Launch while its steps run.
type launch struct {
	plan *launchPlan
	opts *Options
	undo undo.Stack

	proc *vmmproc.Process
	api  *apiClient
}

type launchStep struct {
	name string
	fn   func(context.Context) error
}

func (l *launch) steps() []launchStep {
	return []launchStep{
		{"prepare files", l.prepareFiles},
		{"start VMM", l.startVMM},
		{"wait for API", l.waitAPI},
		{"create VM", l.createVM},
		{"add NICs", l.addNICs},
		{"boot VM", l.bootVM},
		{"wait for running", l.waitRunning},
	}
}

func (l *launch) id() string { return l.plan.cfg.ID }

// prepareFiles clears what a crashed earlier VMM may have left (checked not
// to be serving) and creates the console log, which must exist before
// vm.create: landlock opens every rule's path then.
func (l *launch) prepareFiles(context.Context) error {
	p := l.plan.paths
	if err := removeFiles(append(p.sockets(), p.events)...); err != nil {
		return fmt.Errorf("remove stale files: %w", err)
	}
	cfg := &l.plan.cfg
	if cfg.ConsoleLog == "" {
		return nil
	}
	f, err := os.OpenFile(cfg.ConsoleLog, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil // the caller's file, checked to be a regular one
	}
	if err != nil {
		return fmt.Errorf("create console log: %w", err)
	}
	l.undo.Push("remove console log", func(context.Context) error { return removeFiles(cfg.ConsoleLog) })
	if cfg.User != 0 || cfg.Group != 0 {
		err = f.Chown(int(cfg.User), int(cfg.Group))
	}
	return errors.Join(err, f.Close())
}

func (l *launch) startVMM(context.Context) error {
	cfg, p := &l.plan.cfg, l.plan.paths
	log, err := os.OpenFile(p.log, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("open VMM log: %w", err)
	}
	l.undo.Push("remove VMM log", func(context.Context) error { return removeFiles(p.log) })
	// Sockets and the event file appear as the VMM runs; remove them after
	// it is dead (this step is pushed first, so it runs last).
	l.undo.Push("remove VMM sockets", func(context.Context) error { return removeFiles(append(p.sockets(), p.events)...) })

	args := []string{
		"--api-socket", "path=" + p.apiSocket,
		"--seccomp", string(l.opts.Seccomp),
		"--event-monitor", "path=" + p.events,
	}
	proc, err := vmmproc.Start(vmmproc.Spec{
		Path:      l.plan.binary,
		Args:      args,
		NetNSPath: cfg.NetNSPath,
		UID:       cfg.User,
		GID:       cfg.Group,
		Groups:    cfg.Groups,
		Log:       log,
	})
	// The child holds its own copy of the log fd.
	log.Close()
	if err != nil {
		return err
	}
	l.proc = proc
	l.undo.Push("kill VMM", func(context.Context) error { return killAndWait(proc) })
	klog.V(2).InfoS("VMM started", "vm", l.id(), "pid", proc.PID, "binary", l.plan.binary, "args", args)

	l.api, err = newAPIClient(p.apiSocket)
	return err
}

// waitAPI polls vmm.ping until the VMM answers. Only a refused or missing
// socket is worth waiting out; an HTTP error means the VMM is up and broken.
func (l *launch) waitAPI(ctx context.Context) error {
	delay := pollMin
	for {
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		pong, err := l.api.Ping(pctx)
		cancel()
		if err == nil {
			klog.V(2).InfoS("VMM API up", "vm", l.id(), "version", pong.Version)
			return nil
		}
		if _, ok := errors.AsType[*APIError](err); ok {
			return err
		}
		select {
		case <-l.proc.Done():
			return fmt.Errorf("VMM exited before its API came up: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("%w (last ping: %w)", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, pollMax)
	}
}

func (l *launch) createVM(ctx context.Context) error {
	body := vmConfig(&l.plan.cfg, l.plan.paths, l.opts)
	if v := klog.V(4); v.Enabled() {
		b, _ := json.Marshal(body)
		v.InfoS("vm.create", "vm", l.id(), "config", string(b))
	}
	return l.api.CreateVM(ctx, body)
}

func (l *launch) addNICs(ctx context.Context) error {
	for i := range l.plan.cfg.NICs {
		nic := &l.plan.cfg.NICs[i]
		if err := l.api.AddNet(ctx, netConfig(nic), []*os.File{nic.Tap}); err != nil {
			return fmt.Errorf("NIC %q: %w", nic.ID, err)
		}
	}
	return nil
}

func (l *launch) bootVM(ctx context.Context) error {
	return l.api.BootVM(ctx)
}

// waitRunning confirms the boot: vm.boot returns once the vCPUs are started,
// so the first vm.info normally says Running already.
func (l *launch) waitRunning(ctx context.Context) error {
	delay := pollMin
	for {
		info, err := l.api.Info(ctx)
		if err != nil {
			return err
		}
		if info.State == chapi.VmStateRunning {
			return nil
		}
		select {
		case <-l.proc.Done():
			return fmt.Errorf("VMM exited in state %s", info.State)
		case <-ctx.Done():
			return fmt.Errorf("%w (state %s)", ctx.Err(), info.State)
		case <-time.After(delay):
		}
		delay = min(2*delay, pollMax)
	}
}

// diskRoots are where AddDevice accepts disk paths: with landlock on, only
// paths declared at vm.create are reachable.
func (l *launch) diskRoots() []string {
	if l.opts.DisableLandlock {
		return nil
	}
	return diskRoots(l.plan.cfg.StateDir, l.opts)
}

// explain adds the VMM's fate to a step's error: a VMM that died mid-launch
// explains most API errors better than the API error does.
func (l *launch) explain(err error) error {
	if l.proc == nil {
		return err
	}
	select {
	case <-l.proc.Done():
	case <-time.After(50 * time.Millisecond):
		// A dying VMM closes its socket a moment before it is reaped.
		return err
	}
	return fmt.Errorf("%w; %s", err, exitSummary(l.proc, l.plan.paths.log))
}
