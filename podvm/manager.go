// Package podvm owns pod virtual machines: it boots one from a Spec as an
// ordered list of named steps (guest image check, per-VM keys, virtiofsd,
// VMM, authenticated agent session), hands out a VM handle that runs
// processes in the guest, and tears the VM down without leaving anything on
// the host.
package podvm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/podvm/mountns"
)

// Error kinds.
var (
	ErrInvalidSpec = errors.New("invalid pod VM spec")
	ErrBoot        = errors.New("pod VM boot failed")
	ErrGone        = errors.New("pod VM is gone")
)

// Config is the service-wide configuration of pod VMs.
type Config struct {
	// StateDir holds one private directory per VM (sockets, logs, keys).
	StateDir string
	// GuestDir holds the guest image (kernel, initramfs, manifest.json).
	GuestDir string
	// Driver launches VMs.
	Driver hypervisor.Driver
	// KVM selects hardware virtualization for the driver.
	KVM bool
	// VirtiofsdPath is the virtiofsd binary.
	VirtiofsdPath string
	// VMMUser/VMMGroup are the credentials VMM processes run with; zero
	// keeps root (only for drivers or hosts where dropping is impossible).
	VMMUser, VMMGroup uint32
	// VMMGroups are supplementary groups of VMM processes; with KVM, the
	// group that owns /dev/kvm.
	VMMGroups []uint32
	// BootTimeout bounds launch through agent-ready.
	BootTimeout time.Duration
	// StopTimeout bounds a graceful guest power-off before the VMM is
	// stopped by force.
	StopTimeout time.Duration
}

// DefaultConfig returns the defaults for fields left zero.
func (c Config) withDefaults() Config {
	if c.BootTimeout == 0 {
		c.BootTimeout = 2 * time.Minute
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = 10 * time.Second
	}
	if c.VirtiofsdPath == "" {
		c.VirtiofsdPath = "/usr/lib/qemu/virtiofsd"
	}
	return c
}

// Validate checks c before any VM is booted.
func (c Config) Validate() error {
	switch {
	case c.StateDir == "" || !filepath.IsAbs(c.StateDir):
		return fmt.Errorf("podvm config: StateDir %q must be an absolute path", c.StateDir)
	case c.GuestDir == "" || !filepath.IsAbs(c.GuestDir):
		return fmt.Errorf("podvm config: GuestDir %q must be an absolute path", c.GuestDir)
	case c.Driver == nil:
		return errors.New("podvm config: no VMM driver")
	}
	return nil
}

// Manager boots pod VMs.
type Manager struct {
	cfg Config
}

// NewManager validates cfg and prepares its state directory.
func NewManager(cfg Config) (*Manager, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o711); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	// VM directories hold the pins of their mount namespaces.
	if err := mountns.PrivateDir(cfg.StateDir); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	return &Manager{cfg: cfg}, nil
}

// Spec describes one pod VM.
type Spec struct {
	ID        string
	VCPUs     int
	MemoryMiB int
	// SharedDir, when set, is exposed to the guest through virtio-fs and
	// mounted by the agent at GuestSharedDir.
	SharedDir string
	// NICs and NetNSPath come from pod networking.
	NICs      []hypervisor.NIC
	NetNSPath string
	// ConsoleLog, when set, receives the guest console.
	ConsoleLog string
}

// GuestSharedDir is where the agent mounts the pod's shared directory.
const GuestSharedDir = "/run/podvisor/shared"

// sharedTag is the virtio-fs tag of the pod's shared directory.
const sharedTag = "podvisor"

var idPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

func (s Spec) validate() error {
	switch {
	case !idPattern.MatchString(s.ID):
		return fmt.Errorf("%w: ID %q must match %s", ErrInvalidSpec, s.ID, idPattern)
	case s.VCPUs < 1 || s.VCPUs > 64:
		return fmt.Errorf("%w: VCPUs %d out of range 1-64", ErrInvalidSpec, s.VCPUs)
	case s.MemoryMiB < 128 || s.MemoryMiB > 256*1024:
		return fmt.Errorf("%w: MemoryMiB %d out of range 128-262144", ErrInvalidSpec, s.MemoryMiB)
	case s.SharedDir != "" && !filepath.IsAbs(s.SharedDir):
		return fmt.Errorf("%w: SharedDir %q must be absolute", ErrInvalidSpec, s.SharedDir)
	}
	if s.SharedDir != "" {
		fi, err := os.Stat(s.SharedDir)
		if err != nil || !fi.IsDir() {
			return fmt.Errorf("%w: SharedDir %q is not a directory", ErrInvalidSpec, s.SharedDir)
		}
	}
	return nil
}
