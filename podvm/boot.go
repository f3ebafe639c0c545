package podvm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/undo"
	"github.com/podvisor/podvisor/hypervisor/virtiofsd"
	"github.com/podvisor/podvisor/podvm/channel"
	"github.com/podvisor/podvisor/podvm/guest"
	"github.com/podvisor/podvisor/podvm/mountns"
)

// Key material inside the guest initramfs. The agent reads these files and
// removes them before it starts anything else.
const (
	guestKeyDir      = "/.podvisor/keys"
	guestCertFile    = "agent.crt"
	guestKeyFile     = "agent.key"
	guestHostCrtFile = "host.crt"
)

// Files of a VM's directory on the host: <StateDir>/<id>/...
const (
	keysSubdir = "keys" // root only: the host's key for this VM
	fsSubdir   = "fs"   // root, group VMM: virtiofsd's socket
	vmmSubdir  = "vmm"  // owned by the VMM user: its sockets, console, initramfs
	// mountNSPin pins the VM's mount namespace, where the shared
	// directory's mounts and virtiofsd live.
	mountNSPin = "mntns"
)

type bootStep struct {
	name string
	fn   func(b *boot, ctx context.Context) error
}

// bootSteps is the order in which a pod VM comes up. Each step registers the
// undo of its own side effects.
var bootSteps = []bootStep{
	{"verify guest image", (*boot).verifyGuest},
	{"create VM directory", (*boot).makeDirs},
	{"generate agent keys", (*boot).makeKeys},
	{"compose initramfs", (*boot).composeInitramfs},
	{"record booting VM", (*boot).recordBooting},
	{"create mount namespace", (*boot).createMountNS},
	{"share mounts", (*boot).shareMounts},
	{"start virtiofsd", (*boot).startVirtiofsd},
	{"record booting VM", (*boot).recordBooting},
	{"launch VMM", (*boot).launchVMM},
	{"record booting VM", (*boot).recordBooting},
	{"connect agent", (*boot).connectAgent},
	{"persist state", (*boot).persist},
}

// boot carries the state of one Boot call between its steps.
type boot struct {
	m    *Manager
	spec Spec
	undo undo.Stack

	img       *guest.Image
	dir       string
	hostID    channel.Identity
	guestID   channel.Identity
	initramfs string
	fsd       *virtiofsd.Daemon
	mountNS   *mountns.Namespace
	vmm       hypervisor.VM
	agent     *agentConn
}

// Boot starts a pod VM and returns once its agent answered over an
// authenticated session. On failure every side effect is rolled back.
func (m *Manager) Boot(ctx context.Context, spec Spec) (_ *VM, retErr error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.BootTimeout)
	defer cancel()

	b := &boot{m: m, spec: spec}
	defer func() {
		if retErr != nil {
			if err := b.undo.Run(undoTimeout, "vm", spec.ID); err != nil {
				retErr = errors.Join(retErr, err)
			}
		}
	}()
	start := time.Now()
	for _, s := range bootSteps {
		t := time.Now()
		if err := s.fn(b, ctx); err != nil {
			return nil, fmt.Errorf("%w: %s %s: %w", ErrBoot, spec.ID, s.name, err)
		}
		klog.V(4).InfoS("Boot step done", "vm", spec.ID, "step", s.name, "duration", time.Since(t))
	}
	klog.InfoS("Pod VM ready", "vm", spec.ID, "driver", m.cfg.Driver.Name(), "duration", time.Since(start))
	return newVM(m, b), nil
}

func (b *boot) verifyGuest(context.Context) error {
	img, err := guest.Load(b.m.cfg.GuestDir)
	if err != nil {
		return err
	}
	if err := img.Verify(); err != nil {
		return err
	}
	b.img = img
	return nil
}

func (b *boot) makeDirs(context.Context) error {
	b.dir = filepath.Join(b.m.cfg.StateDir, b.spec.ID)
	if err := os.Mkdir(b.dir, 0o711); err != nil {
		return fmt.Errorf("create %s: %w", b.dir, err)
	}
	b.undo.Push("remove VM directory", func(context.Context) error { return os.RemoveAll(b.dir) })
	uid, gid := b.m.cfg.VMMUser, b.m.cfg.VMMGroup
	for _, d := range []struct {
		name     string
		mode     os.FileMode
		uid, gid int
	}{
		{keysSubdir, 0o700, 0, 0},
		{fsSubdir, 0o750, 0, int(gid)},
		{vmmSubdir, 0o700, int(uid), int(gid)},
	} {
		p := filepath.Join(b.dir, d.name)
		if err := os.Mkdir(p, d.mode); err != nil {
			return fmt.Errorf("create %s: %w", p, err)
		}
		if err := os.Chown(p, d.uid, d.gid); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
	}
	return nil
}

func (b *boot) makeKeys(context.Context) error {
	var err error
	if b.hostID, err = channel.NewIdentity("podvisor-host/" + b.spec.ID); err != nil {
		return err
	}
	if b.guestID, err = channel.NewIdentity("podvisor-agent/" + b.spec.ID); err != nil {
		return err
	}
	return saveHostKeys(filepath.Join(b.dir, keysSubdir), b.hostID, b.guestID.CertDER)
}

// composeInitramfs appends the guest's keys to the shared base initramfs,
// giving a per-VM initramfs readable only by the VMM user. The keys never
// travel on the kernel command line, which any guest process can read.
func (b *boot) composeInitramfs(context.Context) error {
	certPEM, keyPEM, err := b.guestID.MarshalPEM()
	if err != nil {
		return err
	}
	hostPEM, _, err := b.hostID.MarshalPEM()
	if err != nil {
		return err
	}
	files := []guest.File{
		{Path: guestKeyDir + "/" + guestCertFile, Mode: 0o400, Data: certPEM},
		{Path: guestKeyDir + "/" + guestKeyFile, Mode: 0o400, Data: keyPEM},
		{Path: guestKeyDir + "/" + guestHostCrtFile, Mode: 0o400, Data: hostPEM},
	}
	b.initramfs = filepath.Join(b.dir, vmmSubdir, "initramfs.img")
	if err := guest.ComposeInitramfs(b.img.InitramfsPath(), b.initramfs, files); err != nil {
		return err
	}
	return os.Chown(b.initramfs, int(b.m.cfg.VMMUser), int(b.m.cfg.VMMGroup))
}

// createMountNS gives the VM a mount namespace of its own, pinned in its
// directory: the shared directory's mounts are made there and virtiofsd
// starts there, so none of them clutters the host's mount table or holds
// host directories busy. Removing the pin ends the namespace and with it
// every mount in it.
func (b *boot) createMountNS(context.Context) error {
	if b.spec.SharedDir == "" {
		return nil
	}
	ns, err := mountns.Create(filepath.Join(b.dir, mountNSPin))
	if err != nil {
		return err
	}
	b.mountNS = ns
	b.undo.Push("remove mount namespace", func(context.Context) error { return mountns.Remove(ns.Pin()) })
	return nil
}

// shareMounts makes the pod's shared directory a shared mount in the VM's
// namespace before virtiofsd copies that namespace into its sandbox, so
// that container rootfs and volume mounts made there later reach the
// guest. It dies with the namespace.
func (b *boot) shareMounts(context.Context) error {
	if b.mountNS == nil {
		return nil
	}
	return b.mountNS.Run(func() error {
		_, err := ShareMount(b.spec.SharedDir)
		return err
	})
}

// startVirtiofsd starts virtiofsd inside the VM's mount namespace: its
// sandbox is a copy of that namespace whose mounts are slaves of the
// shared directory's.
func (b *boot) startVirtiofsd(ctx context.Context) error {
	if b.mountNS == nil {
		return nil
	}
	cfg := virtiofsd.Config{
		Binary:      b.m.cfg.VirtiofsdPath,
		SharedDir:   b.spec.SharedDir,
		SocketPath:  filepath.Join(b.dir, fsSubdir, "virtiofsd.sock"),
		ID:          b.spec.ID,
		SocketGroup: b.m.cfg.VMMGroup,
		LogPath:     filepath.Join(b.dir, "virtiofsd.log"),
	}
	var d *virtiofsd.Daemon
	err := b.mountNS.Run(func() (err error) {
		d, err = virtiofsd.Start(ctx, cfg)
		return err
	})
	if err != nil {
		return err
	}
	b.fsd = d
	b.undo.Push("stop virtiofsd", d.Stop)
	return nil
}

func (b *boot) launchVMM(ctx context.Context) error {
	cfg := hypervisor.Config{
		ID:         b.spec.ID,
		StateDir:   filepath.Join(b.dir, vmmSubdir),
		Kernel:     b.img.KernelPath(),
		Initramfs:  b.initramfs,
		KernelArgs: kernelArgs(b.spec),
		VCPUs:      b.spec.VCPUs,
		MemoryMiB:  b.spec.MemoryMiB,
		NICs:       b.spec.NICs,
		NetNSPath:  b.spec.NetNSPath,
		User:       b.m.cfg.VMMUser,
		Group:      b.m.cfg.VMMGroup,
		Groups:     b.m.cfg.VMMGroups,
		ConsoleLog: b.spec.ConsoleLog,
		KVM:        b.m.cfg.KVM,
	}
	if cfg.ConsoleLog == "" {
		cfg.ConsoleLog = filepath.Join(b.dir, vmmSubdir, "console.log")
	}
	if b.fsd != nil {
		cfg.SharedFS = &hypervisor.SharedFS{Tag: sharedTag, Socket: b.fsd.SocketPath()}
	}
	vm, err := b.m.cfg.Driver.Launch(ctx, cfg)
	if err != nil {
		return err
	}
	b.vmm = vm
	b.undo.Push("stop VMM", vm.Stop)
	// The VMM has read the initramfs; the guest's private key need not stay
	// on the host.
	if err := os.Remove(b.initramfs); err != nil {
		klog.ErrorS(err, "Cannot remove per-VM initramfs", "vm", b.spec.ID)
	}
	return nil
}

// kernelArgs is the guest command line. It carries no secrets: any process
// in the guest can read it.
func kernelArgs(s Spec) []string {
	args := []string{"console=ttyS0", "quiet", "panic=-1", "reboot=t"}
	if s.SharedDir != "" {
		args = append(args, "podvisor.shared="+sharedTag)
	}
	return args
}

func (b *boot) connectAgent(ctx context.Context) error {
	a, err := dialAgent(ctx, b.vmm, b.hostID, b.guestID.CertDER)
	if err != nil {
		return err
	}
	b.agent = a
	b.undo.Push("close agent session", func(context.Context) error { return a.Close() })
	return nil
}
