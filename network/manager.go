package network

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"

	"github.com/podvisor/podvisor/hypervisor"
)

// Manager sets up and tears down pod networks. It is safe for concurrent
// use; calls for the same pod are serialised.
type Manager struct {
	cfg     Config
	cni     *libcni.CNIConfig
	records recordStore
	locks   podLocks
}

// NewManager validates cfg and creates the state and cache directories.
func NewManager(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{
		cfg:     cfg,
		cni:     libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, cfg.CacheDir, nil),
		records: recordStore{dir: filepath.Join(cfg.StateDir, "pods")},
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{cfg.StateDir, 0o711},
		// VMM processes, unprivileged, enter the netns by path.
		{m.netnsDir(), 0o711},
		{m.records.dir, 0o700},
		{cfg.CacheDir, 0o700},
	} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return nil, fmt.Errorf("network state: %w", err)
		}
	}
	return m, nil
}

func (m *Manager) netnsDir() string { return filepath.Join(m.cfg.StateDir, "netns") }

// NetNSPath is where the pod's network namespace is bind-mounted.
func (m *Manager) NetNSPath(podID string) string { return filepath.Join(m.netnsDir(), podID) }

// Pods lists the pods whose network is set up (or half set up by a daemon
// that crashed), so start-up can tear down those that no longer exist.
func (m *Manager) Pods() ([]string, error) { return m.records.list() }

// PodNetwork is a pod's network as the VM needs it.
type PodNetwork struct {
	// NetNSPath is the namespace the VMM must run in.
	NetNSPath string
	// NICs are attached to the VM at boot. Each NIC's MAC is the CNI veth's
	// MAC and its MTU the veth's MTU; Tap is an open, non-blocking,
	// single-queue tap with IFF_NO_PI|IFF_VNET_HDR (QEMU: vnet_hdr=on).
	// The caller owns the files: close them (CloseTaps) once the VMM holds
	// its copies. The taps are not persistent, so they vanish when the
	// last copy closes.
	NICs []hypervisor.NIC
	// Guest is what the guest agent applies.
	Guest GuestConfig
	// IPs are the pod's addresses, primary first (IPv4 when there is one).
	IPs []netip.Addr
}

// PrimaryIP is PodSandboxStatus.network.ip; the zero Addr when none.
func (p *PodNetwork) PrimaryIP() netip.Addr {
	if len(p.IPs) == 0 {
		return netip.Addr{}
	}
	return p.IPs[0]
}

// AdditionalIPs are PodSandboxStatus.network.additional_ips.
func (p *PodNetwork) AdditionalIPs() []netip.Addr {
	if len(p.IPs) < 2 {
		return nil
	}
	return p.IPs[1:]
}

// CloseTaps closes the host's tap files.
func (p *PodNetwork) CloseTaps() error {
	var errs []error
	for _, n := range p.NICs {
		if n.Tap != nil {
			errs = append(errs, n.Tap.Close())
		}
	}
	return errors.Join(errs...)
}
