package cloudhypervisor

import (
	"fmt"
	"path/filepath"

	"github.com/podvisor/podvisor/hypervisor"
)

// SeccompMode is the value of cloud-hypervisor's --seccomp flag.
type SeccompMode string

const (
	// SeccompOn installs per-thread filters; a violation kills the VMM.
	SeccompOn SeccompMode = "true"
	// SeccompLog only logs violations (for debugging a filter).
	SeccompLog SeccompMode = "log"
	// SeccompOff disables the filters.
	SeccompOff SeccompMode = "false"
)

// Options configure the driver for every VM it launches.
type Options struct {
	// Binary is the cloud-hypervisor executable: an absolute path, or a
	// name looked up in PATH at each Launch.
	Binary string `toml:"binary"`
	// Seccomp is passed as --seccomp; empty means SeccompOn.
	Seccomp SeccompMode `toml:"seccomp"`
	// DisableLandlock turns off the landlock sandbox. Landlock is on by
	// default (the zero value) and restricts the VMM to the files its VM
	// needs.
	DisableLandlock bool `toml:"disable_landlock"`
	// HotplugPaths are files or directories (absolute, existing at Launch)
	// that disks hot-plugged later may live under. Landlock rules are fixed
	// at vm.create, so anything added after boot must be declared here or
	// sit in the VM's StateDir.
	HotplugPaths []string `toml:"hotplug_paths"`
}

// DefaultOptions are the options of a production host.
func DefaultOptions() Options {
	return Options{Binary: "cloud-hypervisor", Seccomp: SeccompOn}
}

// Validate checks o; an empty Binary or Seccomp is filled in by New.
func (o Options) Validate() error {
	switch o.Seccomp {
	case "", SeccompOn, SeccompLog, SeccompOff:
	default:
		return fmt.Errorf("%w: seccomp %q is not one of true, log, false", hypervisor.ErrInvalidConfig, o.Seccomp)
	}
	for _, p := range o.HotplugPaths {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("%w: hotplug path %q is not absolute", hypervisor.ErrInvalidConfig, p)
		}
	}
	return nil
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Binary == "" {
		o.Binary = d.Binary
	}
	if o.Seccomp == "" {
		o.Seccomp = d.Seccomp
	}
	o.HotplugPaths = append([]string(nil), o.HotplugPaths...)
	return o
}
