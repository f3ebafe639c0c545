package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/undo"
	"github.com/podvisor/podvisor/hypervisor/vmmproc"
)

// statusPoll is how often Launch asks whether the guest runs yet; after
// cont it normally does at the first ask.
const statusPoll = 10 * time.Millisecond

// launch is the state of one Launch while its steps run.
type launch struct {
	cfg   *hypervisor.Config
	opts  *Options
	paths paths
	undo  undo.Stack

	in   inherited
	log  *os.File
	proc *vmmproc.Process
	qmp  *qmpClient
}

type launchStep struct {
	name string
	fn   func(context.Context) error
}

func (l *launch) steps() []launchStep {
	return []launchStep{
		{"create sockets", l.createSockets},
		{"open logs", l.openLogs},
		{"start QEMU", l.startQEMU},
		{"connect QMP", l.connectQMP},
		{"start guest", l.startGuest},
	}
}

func (l *launch) createSockets(context.Context) error {
	var err error
	if l.in.qmp, err = l.listen(l.paths.qmp); err != nil {
		return err
	}
	l.in.agent, err = l.listen(l.paths.agent)
	return err
}

func (l *launch) listen(path string) (*os.File, error) {
	f, err := listenUnix(path)
	if err != nil {
		return nil, err
	}
	l.undo.Push("remove "+path, func(context.Context) error {
		f.Close() // no-op once handed over
		return removeFiles(path)
	})
	return f, nil
}

// openLogs creates QEMU's own log (kept while the VM runs, to say why it
// died) and opens the console log, removing it again on failure only if
// this launch created it.
func (l *launch) openLogs(context.Context) error {
	var err error
	if l.log, err = createFile(l.paths.log, os.O_TRUNC); err != nil {
		return fmt.Errorf("create QEMU log: %w", err)
	}
	l.undo.Push("remove QEMU log", func(context.Context) error {
		l.log.Close()
		return removeFiles(l.paths.log)
	})
	if l.cfg.ConsoleLog == "" {
		return nil
	}
	f, err := createFile(l.cfg.ConsoleLog, os.O_APPEND|os.O_EXCL)
	if errors.Is(err, os.ErrExist) {
		f, err = createFile(l.cfg.ConsoleLog, os.O_APPEND)
	} else if err == nil {
		l.undo.Push("remove console log", func(context.Context) error { return removeFiles(l.cfg.ConsoleLog) })
	}
	if err != nil {
		return fmt.Errorf("open console log: %w", err)
	}
	l.in.console = f
	l.undo.Push("close console log", func(context.Context) error { f.Close(); return nil })
	return nil
}

func (l *launch) startQEMU(context.Context) error {
	c := buildCmdline(l.opts, l.cfg, l.in)
	proc, err := vmmproc.Start(vmmproc.Spec{
		Path:       l.opts.Binary,
		Args:       c.args,
		ExtraFiles: c.files,
		NetNSPath:  l.cfg.NetNSPath,
		UID:        l.cfg.User,
		GID:        l.cfg.Group,
		Groups:     l.cfg.Groups,
		Log:        l.log,
	})
	if err != nil {
		return err
	}
	l.proc = proc
	l.undo.Push("kill QEMU", func(context.Context) error { proc.Kill(); return nil })
	// QEMU holds its own copies now; ours would keep the sockets accepting
	// after QEMU died.
	for _, f := range []*os.File{l.in.qmp, l.in.agent, l.in.console, l.log} {
		if f != nil {
			f.Close()
		}
	}
	return nil
}

func (l *launch) connectQMP(ctx context.Context) error {
	// If QEMU exits (bad option, unreadable kernel) the listening socket
	// closes with it and the greeting read fails at once.
	q, err := dialQMP(ctx, l.paths.qmp, l.cfg.ID)
	if err != nil {
		return err
	}
	l.qmp = q
	l.undo.Push("close QMP", func(context.Context) error { q.close(); return nil })
	return nil
}

func (l *launch) startGuest(ctx context.Context) error {
	if err := l.qmp.execute(ctx, "cont", nil, nil); err != nil {
		return err
	}
	for {
		var st struct {
			Status string `json:"status"`
		}
		if err := l.qmp.execute(ctx, "query-status", nil, &st); err != nil {
			return err
		}
		switch st.Status {
		case "running":
			return nil
		case "prelaunch", "paused", "inmigrate", "finish-migrate", "restore-vm":
		default:
			return fmt.Errorf("guest is %s", st.Status)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(statusPoll):
		}
	}
}

// explain adds why QEMU exited, from its log, to a step's error.
func (l *launch) explain(err error) error {
	if l.proc == nil {
		return err
	}
	select {
	case <-l.proc.Done():
	case <-time.After(100 * time.Millisecond):
		// The step failed while QEMU still ran: nothing to add.
		return err
	}
	return fmt.Errorf("%w (QEMU exited: %v; log: %s)", err, l.proc.Err(), logTail(l.paths.log))
}
