package podvm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/virtiofsd"
	"github.com/podvisor/podvisor/podvm/mountns"
)

// stateFile, in a VM's directory, is what a restarted daemon needs to find
// the VM again. The VMM and virtiofsd run in their own sessions and survive
// the daemon; the agent keeps its processes across host sessions.
const stateFile = "vm.json"

// persisted is the content of stateFile.
type persisted struct {
	ID        string           `json:"id"`
	VMM       hypervisor.State `json:"vmm"`
	Virtiofsd *virtiofsd.State `json:"virtiofsd,omitempty"`
	SharedDir string           `json:"sharedDir,omitempty"`
	// MountNS pins the VM's mount namespace, which holds the shared
	// directory's mounts. A VM recorded without one has them in the
	// host's namespace.
	MountNS string            `json:"mountNS,omitempty"`
	Extra   map[string]string `json:"extra,omitempty"`
	// Booting marks a VM whose boot has not finished: a daemon that
	// crashed mid-boot left it, and it is only good for Cleanup.
	Booting bool `json:"booting,omitempty"`
}

// persist is the last boot step: from here on the VM can be found again.
func (b *boot) persist(context.Context) error { return writeState(b.dir, b.state(false)) }

// recordBooting saves the processes started so far, so that if the daemon
// dies before the boot ends, the next one finds and removes them.
func (b *boot) recordBooting(context.Context) error { return writeState(b.dir, b.state(true)) }

func (b *boot) state(booting bool) persisted {
	p := persisted{ID: b.spec.ID, SharedDir: b.spec.SharedDir, Booting: booting}
	if b.vmm != nil {
		p.VMM = b.vmm.State()
	}
	if b.fsd != nil {
		st := b.fsd.State()
		p.Virtiofsd = &st
	}
	if b.mountNS != nil {
		p.MountNS = b.mountNS.Pin()
	}
	return p
}

func writeState(dir string, p persisted) error {
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("save VM state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, stateFile)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save VM state: %w", err)
	}
	return nil
}

// List returns the IDs of the VMs with persisted state, running or not.
func (m *Manager) List() ([]string, error) {
	ents, err := os.ReadDir(m.cfg.StateDir)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if !e.IsDir() || !idPattern.MatchString(e.Name()) {
			continue
		}
		if _, err := os.Stat(filepath.Join(m.cfg.StateDir, e.Name(), stateFile)); err == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// Reattach finds a VM booted by an earlier daemon process and opens a new
// authenticated session to its agent. A VM whose VMM is gone fails with
// ErrGone; Cleanup then removes what it left.
func (m *Manager) Reattach(ctx context.Context, id string) (*VM, error) {
	if !idPattern.MatchString(id) {
		return nil, fmt.Errorf("%w: ID %q", ErrInvalidSpec, id)
	}
	dir := filepath.Join(m.cfg.StateDir, id)
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: no saved state: %v", ErrGone, id, err)
	}
	var p persisted
	if err := json.Unmarshal(data, &p); err != nil || p.ID != id {
		return nil, fmt.Errorf("%w: %s: corrupt saved state", ErrGone, id)
	}
	if p.Booting {
		return nil, fmt.Errorf("%w: %s: its boot never finished", ErrGone, id)
	}
	vmm, err := m.cfg.Driver.Reattach(ctx, p.VMM)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrGone, id, err)
	}
	// A VM that lost its shared filesystem or the namespace of its mounts
	// runs but cannot serve containers any more.
	lost := func(what string, err error) error {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hypervisor.DefaultStopTimeout)
		defer cancel()
		vmm.Stop(stopCtx)
		return fmt.Errorf("%w: %s: %s: %w", ErrGone, id, what, err)
	}
	var fsd *virtiofsd.Daemon
	if p.Virtiofsd != nil {
		if fsd, err = virtiofsd.Attach(*p.Virtiofsd); err != nil {
			return nil, lost("virtiofsd", err)
		}
	}
	var ns *mountns.Namespace
	if p.MountNS != "" {
		if ns, err = mountns.Open(p.MountNS); err != nil {
			err = lost("mount namespace", err)
			if fsd != nil {
				// The VM is stopped: its virtiofsd must not outlive it.
				stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hypervisor.DefaultStopTimeout)
				fsd.Stop(stopCtx)
				cancel()
			}
			return nil, err
		}
	}
	// From here a failure leaves the VM running for a later attempt, but
	// must not keep this attempt's QMP connection or watchers.
	release := func() {
		vmm.Release()
		if fsd != nil {
			fsd.Release()
		}
	}
	hostID, guestCert, err := loadHostKeys(filepath.Join(dir, keysSubdir))
	if err != nil {
		release()
		return nil, fmt.Errorf("%s: load keys: %w", id, err)
	}
	a, err := dialAgent(ctx, vmm, hostID, guestCert)
	if err != nil {
		release()
		return nil, fmt.Errorf("%s: reconnect agent: %w", id, err)
	}
	v := &VM{
		id:        id,
		dir:       dir,
		cfg:       m.cfg,
		vmm:       vmm,
		fsd:       fsd,
		agent:     a,
		done:      make(chan struct{}),
		sharedDir: p.SharedDir,
		mountNS:   ns,
	}
	switch {
	case ns != nil:
		v.dropMounts = func() error { return mountns.Remove(p.MountNS) }
	case p.SharedDir != "":
		v.dropMounts = func() error { return unmount(p.SharedDir) }
	}
	go v.watch()
	klog.InfoS("Pod VM re-attached", "vm", id, "pid", p.VMM.PID)
	return v, nil
}

// Cleanup removes what a VM that died while no daemon watched it left on
// the host: any surviving process of it, its mount namespace (and so every
// mount of its shared directory) and its directory. It is idempotent.
func (m *Manager) Cleanup(ctx context.Context, id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%w: ID %q", ErrInvalidSpec, id)
	}
	dir := filepath.Join(m.cfg.StateDir, id)
	var errs []error
	if data, err := os.ReadFile(filepath.Join(dir, stateFile)); err == nil {
		var p persisted
		if json.Unmarshal(data, &p) == nil {
			if vmm, err := m.cfg.Driver.Reattach(ctx, p.VMM); err == nil {
				errs = append(errs, vmm.Stop(ctx))
			}
			if p.Virtiofsd != nil {
				if fsd, err := virtiofsd.Attach(*p.Virtiofsd); err == nil {
					errs = append(errs, fsd.Stop(ctx))
				}
			}
			if p.SharedDir != "" && p.MountNS == "" {
				if err := unmount(p.SharedDir); err != nil && !errors.Is(err, os.ErrNotExist) {
					klog.V(2).InfoS("Shared dir not mounted", "vm", id, "err", err)
				}
			}
		}
	}
	// The pin is looked for whatever the record says: a boot may have
	// pinned the namespace and died before recording it.
	if err := mountns.Remove(filepath.Join(dir, mountNSPin)); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
