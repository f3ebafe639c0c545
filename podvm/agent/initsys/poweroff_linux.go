package initsys

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// powerOffGrace is how long processes get to exit after SIGTERM.
const powerOffGrace = 3 * time.Second

// PowerOff syncs the filesystems, asks every process to terminate, kills
// those still there after a grace period, syncs again and powers the VM off.
// It refuses to run unless the caller is PID 1: kill(-1) from anywhere else
// would signal every process of the host it runs on. Reaping the processes
// it kills is the reaper's job, which must keep running meanwhile.
func PowerOff() error {
	if err := requirePID1("power off"); err != nil {
		return err
	}
	unix.Sync()
	_ = unix.Kill(-1, unix.SIGTERM)
	waitNoProcesses(powerOffGrace)
	_ = unix.Kill(-1, unix.SIGKILL)
	waitNoProcesses(time.Second)
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

// waitNoProcesses waits until no process but PID 1 is left (kill(-1, 0)
// finds none to signal), or timeout.
func waitNoProcesses(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if errors.Is(unix.Kill(-1, 0), unix.ESRCH) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
