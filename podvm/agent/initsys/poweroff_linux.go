package initsys

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// powerOffGrace is how long processes get to exit after SIGTERM.
const powerOffGrace = 3 * time.Second

// PowerOff syncs the filesystems, asks every process to terminate, kills
// what is left after powerOffGrace and powers the machine off. It never
// returns on success.
func PowerOff() error {
	if err := requirePID1("power off"); err != nil {
		return err
	}
	unix.Sync()
	_ = unix.Kill(-1, unix.SIGTERM)
	waitNoProcesses("/proc", powerOffGrace)
	_ = unix.Kill(-1, unix.SIGKILL)
	waitNoProcesses("/proc", time.Second)
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

// waitNoProcesses waits until no user process but PID 1 is left, or
// timeout. kill(-1, 0) cannot tell: it also finds kernel threads, which
// never exit, so every power-off used to wait for the whole grace period.
func waitNoProcesses(proc string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && userProcesses(proc) > 0 {
		time.Sleep(20 * time.Millisecond)
	}
}

// userProcesses counts the processes under proc other than PID 1 and
// kernel threads (kthreadd, PID 2, and its children).
func userProcesses(proc string) int {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 2 {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(proc, e.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		if ppid, state, ok := parseStat(string(stat)); ok && ppid != 2 && state != "Z" {
			n++
		}
	}
	return n
}

// parseStat returns the parent PID and state from /proc/PID/stat. The
// command name, in parentheses, may itself contain spaces and parentheses.
func parseStat(stat string) (ppid int, state string, ok bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, "", false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0, "", false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, f[0], err == nil
}
