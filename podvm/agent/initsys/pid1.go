package initsys

import (
	"fmt"
	"os"
)

// requirePID1 guards the functions that would damage any machine but a pod
// VM if they ran there as root outside PID 1.
func requirePID1(what string) error {
	if pid := os.Getpid(); pid != 1 {
		return fmt.Errorf("%s: refused, running as PID %d, not PID 1", what, pid)
	}
	return nil
}
