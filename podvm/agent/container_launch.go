package agent

import (
	"context"
	"fmt"
	"os"
	"time"
)

// launch describes a runc create or runc exec: a runc command that exits
// and leaves a process behind, which the agent then follows like one it
// started itself.
//
// runc runs detached (--pid-file) in both cases. The process it leaves is
// re-parented to the agent (PID 1; a child subreaper in tests) when runc's
// intermediate processes exit, so its exit status reaches the reaper
// directly: exit codes and signals are exact, and SIGKILL reaches the
// process itself rather than a runc that would forward it. Because the
// process may exit, and be reaped, before runc has even exited, the launch
// runs inside a reaper adoption window.
type launch struct {
	// args are runc's arguments after the global and logging options, up
	// to (not including) the container id.
	args        []string
	containerID string
	logFile     string
	pidFile     string
	terminal    bool
	rows, cols  uint32
}

// launch runs l for p with its stdio on st and, on success, starts
// following the process. On failure the caller cleans up what runc may
// have left (the container, or an exec'd process already adopted: see the
// returned pid, non-zero once the process is known).
func (s *Service) launch(ctx context.Context, p *process, st streams, l launch) (pid int, retErr error) {
	argv := s.runcArgv("--log", l.logFile, "--log-format", "json")
	argv = append(argv, l.args...)
	argv = append(argv, "--pid-file", l.pidFile)

	var pio *processIO
	var console *consoleSocket
	var child [3]*os.File
	if l.terminal {
		var err error
		if console, err = newConsoleSocket(s.cfg.Containers.consoleDir()); err != nil {
			return 0, err
		}
		defer console.close()
		argv = append(argv, "--console-socket", console.path())
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			return 0, err
		}
		child = [3]*os.File{null, null, null}
	} else {
		var err error
		if pio, err = newProcessIO(p.id, st, false, 0, 0); err != nil {
			return 0, err
		}
		defer func() {
			if retErr != nil {
				pio.closeOwn()
			}
		}()
		child = pio.child
	}
	argv = append(argv, l.containerID)

	window := s.cfg.Reaper.OpenWindow()
	defer window.Close()
	runcPID, exitCh, err := s.startRunc(argv, []uintptr{child[0].Fd(), child[1].Fd(), child[2].Fd()})
	// runc and the process it leaves have their copies now.
	if pio != nil {
		pio.closeChild()
	} else {
		child[0].Close()
	}
	if err != nil {
		return 0, fmt.Errorf("start runc: %w", err)
	}
	exit, err := s.waitRunc(ctx, runcPID, exitCh)
	if err != nil {
		return 0, err
	}
	if exit.ExitCode() != 0 {
		msg := runcLogError(l.logFile)
		if msg == "" {
			msg = "no error logged"
		}
		return 0, fmt.Errorf("runc %s: exit code %d: %s: %w", l.args[0], exit.ExitCode(), msg, ErrFailedPrecondition)
	}
	pid, err = readPIDFile(l.pidFile)
	if err != nil {
		return 0, err
	}
	procExit, err := window.Adopt(pid)
	if err != nil {
		return 0, fmt.Errorf("follow process %d: %w", pid, err)
	}
	if l.terminal {
		master, err := console.receive(ctx)
		if err != nil {
			return pid, err
		}
		if pio, err = newConsoleIO(p.id, st, master, l.rows, l.cols); err != nil {
			return pid, err
		}
	}
	p.pid = pid
	p.started = time.Now()
	p.follow(pio, procExit)
	return pid, nil
}
