package agent

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// spawn starts the process described by req as p, executing path, with its
// stdio on pio, and starts following it. On success p and pio belong to the
// goroutine that follows the process.
func (s *Service) spawn(p *process, path string, req *agentpb.StartProcessRequest, pio *processIO) error {
	cwd := req.GetCwd()
	if cwd == "" {
		cwd = "/"
	}
	attr := &syscall.ProcAttr{
		Dir:   cwd,
		Env:   req.GetEnv(),
		Files: pio.childFds(),
		Sys:   sysProcAttr(req),
	}
	if attr.Env == nil {
		attr.Env = []string{} // nil would mean the agent's own environment
	}
	// Read before the fork: the reaper may record the exit of a short
	// process before ForkExec has even returned here.
	started := time.Now()
	pid, exitCh, err := s.cfg.Reaper.Start(func() (int, error) {
		return syscall.ForkExec(path, req.GetArgs(), attr)
	})
	// The child has its copies now (or never will): close ours, or the
	// outputs would never reach EOF.
	pio.closeChild()
	if err != nil {
		return execError(path, cwd, err)
	}
	p.pid = pid
	p.started = started
	p.follow(pio, exitCh)
	return nil
}

// sysProcAttr gives the child its credentials and puts it in a process group
// of its own (so signals meant for it can go to the whole group) or, with a
// terminal, a session whose controlling terminal is the pty.
func sysProcAttr(req *agentpb.StartProcessRequest) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{
		Credential: &syscall.Credential{
			Uid:    req.GetUid(),
			Gid:    req.GetGid(),
			Groups: req.GetAdditionalGids(),
			// Only an agent without CAP_SETGID (an ordinary process in
			// tests, never PID 1 of a guest) cannot set groups; it keeps
			// its own supplementary groups unless the request lists some.
			NoSetGroups: os.Geteuid() != 0 && len(req.GetAdditionalGids()) == 0,
		},
	}
	if req.GetTerminal() {
		attr.Setsid = true
		attr.Setctty = true
		attr.Ctty = 0 // the child's stdin, the pty slave
	} else {
		attr.Setpgid = true
	}
	return attr
}

// execError describes why a process could not be started. ForkExec does not
// say which step failed, so a missing file may be the executable or cwd.
func execError(path, cwd string, err error) error {
	var kind error
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ENOTDIR):
		kind = ErrNotFound
	case errors.Is(err, syscall.E2BIG):
		kind = ErrInvalidArgument
	case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.ENOMEM):
		kind = ErrResourceExhausted
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM),
		errors.Is(err, syscall.ENOEXEC), errors.Is(err, syscall.ELOOP),
		errors.Is(err, syscall.ETXTBSY), errors.Is(err, syscall.EINVAL):
		kind = ErrFailedPrecondition
	default:
		return fmt.Errorf("exec %q in %q: %w", truncate(path, 256), truncate(cwd, 256), err)
	}
	return fmt.Errorf("exec %q in %q: %w: %w", truncate(path, 256), truncate(cwd, 256), err, kind)
}
