package initsys

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// SetupConsole points the agent's stdout and stderr, where klog writes, at
// /dev/console, and its stdin at /dev/null, so that its logs reach the VM's
// serial console. When the console cannot be opened it falls back to
// /dev/kmsg, the kernel log, which the kernel rate-limits (printk_devkmsg):
// logs may then be lost, but never block the agent. Call it after Setup,
// which mounts /dev.
func SetupConsole() error {
	null, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("console: /dev/null: %w", err)
	}
	defer unix.Close(null)
	out, err := unix.Open("/dev/console", unix.O_WRONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		var kerr error
		if out, kerr = unix.Open("/dev/kmsg", unix.O_WRONLY|unix.O_CLOEXEC, 0); kerr != nil {
			return fmt.Errorf("console: %w", errors.Join(err, kerr))
		}
	}
	defer unix.Close(out)
	for _, d := range [][2]int{{null, 0}, {out, 1}, {out, 2}} {
		if err := unix.Dup3(d[0], d[1], 0); err != nil {
			return fmt.Errorf("console: dup to fd %d: %w", d[1], err)
		}
	}
	return nil
}
