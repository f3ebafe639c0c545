package cloudhypervisor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/podvisor/podvisor/hypervisor"
)

// launchPlan is a validated Config with everything resolved that Launch
// needs; building it has no side effect.
type launchPlan struct {
	cfg    hypervisor.Config
	binary string
	paths  vmPaths
}

func (d *Driver) plan(cfg hypervisor.Config) (*launchPlan, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.KVM {
		return nil, fmt.Errorf("%w: cloud-hypervisor needs KVM", hypervisor.ErrUnsupported)
	}
	if err := checkConfigPaths(&cfg); err != nil {
		return nil, err
	}
	if err := checkNICs(cfg.NICs); err != nil {
		return nil, err
	}
	for _, hp := range d.opts.HotplugPaths {
		// Landlock opens every rule's path at vm.create.
		if _, err := os.Stat(hp); err != nil && !d.opts.DisableLandlock {
			return nil, fmt.Errorf("%w: hotplug path: %w", hypervisor.ErrInvalidConfig, err)
		}
	}
	binary, err := exec.LookPath(d.opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", hypervisor.ErrUnsupported, err)
	}
	p := pathsFor(cfg.StateDir)
	if err := checkNoLiveVMM(p.apiSocket); err != nil {
		return nil, err
	}
	cfg.NICs = append([]hypervisor.NIC(nil), cfg.NICs...)
	return &launchPlan{cfg: cfg, binary: binary, paths: p}, nil
}

// checkConfigPaths rejects paths the VMM would misread: relative ones, ones
// with a comma (the separator of its command-line options), sockets too long
// for sun_path, and files that are missing or of the wrong kind.
func checkConfigPaths(cfg *hypervisor.Config) error {
	named := map[string]string{
		"StateDir": cfg.StateDir, "Kernel": cfg.Kernel, "Initramfs": cfg.Initramfs,
		"ConsoleLog": cfg.ConsoleLog, "NetNSPath": cfg.NetNSPath,
	}
	if cfg.SharedFS != nil {
		named["SharedFS.Socket"] = cfg.SharedFS.Socket
	}
	for name, p := range named {
		if p != "" && (!filepath.IsAbs(p) || filepath.Clean(p) != p) {
			return fmt.Errorf("%w: %s %q is not a clean absolute path", hypervisor.ErrInvalidConfig, name, p)
		}
	}
	if strings.ContainsAny(cfg.StateDir, ",\n") {
		return fmt.Errorf("%w: StateDir %q holds a comma or newline", hypervisor.ErrInvalidConfig, cfg.StateDir)
	}
	p := pathsFor(cfg.StateDir)
	if len(p.vsock)+vsockPortSuffixLen > maxUnixPath || len(p.apiSocket) > maxUnixPath {
		return fmt.Errorf("%w: StateDir %q too long for unix socket paths", hypervisor.ErrInvalidConfig, cfg.StateDir)
	}
	if fi, err := os.Lstat(cfg.StateDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("%w: StateDir %q is not a directory", hypervisor.ErrInvalidConfig, cfg.StateDir)
	}
	for name, f := range map[string]string{"Kernel": cfg.Kernel, "Initramfs": cfg.Initramfs} {
		if f == "" {
			continue
		}
		if fi, err := os.Stat(f); err != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("%w: %s %q is not a regular file", hypervisor.ErrInvalidConfig, name, f)
		}
	}
	if cfg.ConsoleLog != "" {
		// The VMM follows symlinks and does not defend against them.
		fi, err := os.Lstat(cfg.ConsoleLog)
		switch {
		case err == nil && !fi.Mode().IsRegular():
			return fmt.Errorf("%w: ConsoleLog %q is not a regular file", hypervisor.ErrInvalidConfig, cfg.ConsoleLog)
		case err != nil && !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("%w: ConsoleLog: %w", hypervisor.ErrInvalidConfig, err)
		}
	}
	return nil
}

func checkNICs(nics []hypervisor.NIC) error {
	seen := map[string]bool{}
	for i := range nics {
		if err := checkNIC(&nics[i]); err != nil {
			return err
		}
		if seen[nics[i].ID] {
			return fmt.Errorf("%w: duplicate NIC ID %q", hypervisor.ErrInvalidConfig, nics[i].ID)
		}
		seen[nics[i].ID] = true
	}
	return nil
}

func checkNIC(n *hypervisor.NIC) error {
	if err := checkDeviceID(n.ID); err != nil {
		return err
	}
	if n.Tap == nil {
		return fmt.Errorf("%w: NIC %q has no tap", hypervisor.ErrInvalidConfig, n.ID)
	}
	if !validMAC(n.MAC) {
		return fmt.Errorf("%w: NIC %q: MAC %q is not a unicast Ethernet address", hypervisor.ErrInvalidConfig, n.ID, n.MAC)
	}
	return nil
}

// checkDeviceID keeps caller IDs apart from the VMM's own ("_disk0", "_net1"…).
func checkDeviceID(id string) error {
	if id == "" || strings.HasPrefix(id, "_") || len(id) > 64 {
		return fmt.Errorf("%w: device ID %q must be 1-64 bytes and not start with '_'", hypervisor.ErrInvalidConfig, id)
	}
	return nil
}

// checkNoLiveVMM refuses a StateDir whose API socket still answers: another
// VMM owns it, and starting a second one would steal its files.
func checkNoLiveVMM(apiSocket string) error {
	c, err := net.DialTimeout("unix", apiSocket, 100*time.Millisecond)
	if err != nil {
		return nil
	}
	c.Close()
	return fmt.Errorf("%w: a VMM already serves %s", hypervisor.ErrInvalidConfig, apiSocket)
}
