package qemu

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/podvisor/podvisor/hypervisor"
)

// deviceIDPattern is what a caller's device or NIC ID may look like. QEMU
// ids must start with a letter (the driver's prefixes take care of that) and
// hold only letters, digits, '-', '.' and '_'.
var deviceIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// maxSocketPath is the longest path a unix socket can be bound or
// connected at (sun_path is 108 bytes with its NUL).
const maxSocketPath = 107

// maxFSTag is virtio-fs's limit on the mount tag.
const maxFSTag = 36

// validate checks cfg for this driver before anything is created.
func validate(cfg *hypervisor.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	for _, p := range []struct{ name, path string }{
		{"StateDir", cfg.StateDir}, {"Kernel", cfg.Kernel}, {"Initramfs", cfg.Initramfs},
		{"ConsoleLog", cfg.ConsoleLog}, {"NetNSPath", cfg.NetNSPath},
	} {
		if p.path != "" && !filepath.IsAbs(p.path) {
			return fmt.Errorf("%w: %s %q is not an absolute path", hypervisor.ErrInvalidConfig, p.name, p.path)
		}
	}
	if p := filepath.Join(cfg.StateDir, agentSocketName); len(p) > maxSocketPath {
		return fmt.Errorf("%w: StateDir %q too long for a unix socket path", hypervisor.ErrInvalidConfig, cfg.StateDir)
	}
	if err := checkReadable("Kernel", cfg.Kernel); err != nil {
		return err
	}
	if cfg.Initramfs != "" {
		if err := checkReadable("Initramfs", cfg.Initramfs); err != nil {
			return err
		}
	}
	for _, a := range cfg.KernelArgs {
		if a == "" || strings.ContainsAny(a, " \x00\n") {
			return fmt.Errorf("%w: kernel argument %q is empty or holds a space, NUL or newline", hypervisor.ErrInvalidConfig, a)
		}
	}
	if fs := cfg.SharedFS; fs != nil {
		switch {
		case !filepath.IsAbs(fs.Socket) || len(fs.Socket) > maxSocketPath:
			return fmt.Errorf("%w: SharedFS socket %q must be an absolute path of at most %d bytes", hypervisor.ErrInvalidConfig, fs.Socket, maxSocketPath)
		case len(fs.Tag) > maxFSTag:
			return fmt.Errorf("%w: SharedFS tag %q longer than %d bytes", hypervisor.ErrInvalidConfig, fs.Tag, maxFSTag)
		}
	}
	seen := make(map[string]bool)
	for _, n := range cfg.NICs {
		if err := validateNIC(&n); err != nil {
			return err
		}
		if seen[n.ID] {
			return fmt.Errorf("%w: duplicate NIC ID %q", hypervisor.ErrInvalidConfig, n.ID)
		}
		seen[n.ID] = true
	}
	return nil
}

func validateNIC(n *hypervisor.NIC) error {
	switch {
	case !deviceIDPattern.MatchString(n.ID):
		return fmt.Errorf("%w: NIC ID %q must match %s", hypervisor.ErrInvalidConfig, n.ID, deviceIDPattern)
	case n.Tap == nil || len(n.MAC) != 6:
		return fmt.Errorf("%w: NIC %q needs a 6-byte MAC and a tap", hypervisor.ErrInvalidConfig, n.ID)
	case n.MAC[0]&1 == 1:
		return fmt.Errorf("%w: NIC %q: MAC %s is a multicast address", hypervisor.ErrInvalidConfig, n.ID, n.MAC)
	case n.MTU != 0 && (n.MTU < 68 || n.MTU > 65535):
		return fmt.Errorf("%w: NIC %q: MTU %d out of range 68-65535", hypervisor.ErrInvalidConfig, n.ID, n.MTU)
	}
	return nil
}

func validateDisk(d *hypervisor.Disk) error {
	switch {
	case !deviceIDPattern.MatchString(d.ID):
		return fmt.Errorf("%w: disk ID %q must match %s", hypervisor.ErrInvalidConfig, d.ID, deviceIDPattern)
	case !filepath.IsAbs(d.Path):
		return fmt.Errorf("%w: disk %q: path %q is not absolute", hypervisor.ErrInvalidConfig, d.ID, d.Path)
	}
	return nil
}

// checkReadable catches a missing boot file before QEMU is started; QEMU,
// running as cfg.User, still needs read access of its own.
func checkReadable(name, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", hypervisor.ErrInvalidConfig, name, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s %q is not a regular file", hypervisor.ErrInvalidConfig, name, path)
	}
	return nil
}
