package initsys

import (
	"fmt"
)

// DefaultModulesFile lists the kernel modules to load, one path per line.
const DefaultModulesFile = "/etc/podvisor/modules"

// Options configures Setup.
type Options struct {
	// Hostname, when set, becomes the guest's hostname.
	Hostname string
	// ModulesFile lists the modules to load, in order; DefaultModulesFile
	// when empty. A missing file means no modules.
	ModulesFile string
}

type step struct {
	name string
	fn   func() error
}

// Setup prepares the guest as PID 1: it mounts the kernel filesystems, loads
// the kernel modules, brings up lo and sets the hostname, in that order,
// stopping at the first failure. It refuses to run unless the caller is PID
// 1: run by root anywhere else it would mount over the /run and /tmp of the
// machine it runs on.
func Setup(opts Options) error {
	if err := requirePID1("init"); err != nil {
		return err
	}
	if opts.Hostname != "" {
		if err := validateHostname(opts.Hostname); err != nil {
			return err
		}
	}
	if opts.ModulesFile == "" {
		opts.ModulesFile = DefaultModulesFile
	}
	steps := []step{
		{"mount filesystems", mountAll},
		{"create /dev links", devLinks},
		{"load kernel modules", func() error { return LoadModules(opts.ModulesFile) }},
		{"bring up lo", loopbackUp},
		{"set hostname", func() error {
			if opts.Hostname == "" {
				return nil
			}
			return SetHostname(opts.Hostname)
		}},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return fmt.Errorf("init: %s: %w", s.name, err)
		}
	}
	return nil
}
