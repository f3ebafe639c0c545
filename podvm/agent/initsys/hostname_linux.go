package initsys

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// SetHostname sets the guest's hostname after checking it is a valid host
// name.
func SetHostname(name string) error {
	if err := validateHostname(name); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	return nil
}
