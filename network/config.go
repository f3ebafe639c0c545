package network

import (
	"fmt"
	"path/filepath"
)

// Config is the service-wide network configuration.
type Config struct {
	// StateDir holds the pod netns bind mounts (netns/<podSandboxID>), the
	// per-pod records Teardown needs after a restart (pods/) and, unless
	// CacheDir is set, libcni's result cache (cni-cache/).
	StateDir string `toml:"state_dir"`
	// ConfDir is searched for the network config: the first .conflist,
	// .conf or .json file by name, as containerd does.
	ConfDir string `toml:"conf_dir"`
	// BinDirs are searched for plugin binaries, in order.
	BinDirs []string `toml:"bin_dirs"`
	// CacheDir is libcni's cache of ADD results and configs, used by DEL.
	CacheDir string `toml:"cache_dir"`
	// IfName is the interface name CNI creates in the pod namespace.
	IfName string `toml:"if_name"`
}

// Default returns the configuration used when the config file says nothing.
func Default() Config {
	const stateDir = "/var/lib/podvisor/network"
	return Config{
		StateDir: stateDir,
		ConfDir:  "/etc/cni/net.d",
		BinDirs:  []string{"/opt/cni/bin"},
		CacheDir: filepath.Join(stateDir, "cni-cache"),
		IfName:   "eth0",
	}
}

// Validate checks c before anything touches the host.
func (c Config) Validate() error {
	if err := absPath("state_dir", c.StateDir); err != nil {
		return err
	}
	if err := absPath("conf_dir", c.ConfDir); err != nil {
		return err
	}
	if err := absPath("cache_dir", c.CacheDir); err != nil {
		return err
	}
	if len(c.BinDirs) == 0 {
		return fmt.Errorf("network config: bin_dirs is empty: %w", ErrInvalidArgument)
	}
	for i, d := range c.BinDirs {
		if err := absPath(fmt.Sprintf("bin_dirs[%d]", i), d); err != nil {
			return err
		}
	}
	if !validIfName(c.IfName) {
		return fmt.Errorf("network config: if_name %q is not a valid interface name: %w", c.IfName, ErrInvalidArgument)
	}
	return nil
}

func absPath(field, p string) error {
	if p == "" || !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return fmt.Errorf("network config: %s %q must be a clean absolute path: %w", field, p, ErrInvalidArgument)
	}
	return nil
}

// validIfName follows the kernel's dev_valid_name: 1-15 bytes, not "." or
// "..", no '/', ':' or whitespace.
func validIfName(name string) bool {
	if name == "" || len(name) > 15 || name == "." || name == ".." {
		return false
	}
	for _, r := range name {
		if r == '/' || r == ':' || r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}
