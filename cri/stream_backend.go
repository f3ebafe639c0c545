package cri

import (
	"context"
	"fmt"
	"io"
	"sync"
	"syscall"

	"github.com/podvisor/podvisor/cri/errdefs"
	"github.com/podvisor/podvisor/cri/store/sandbox"
)

// The streaming server (cri/streaming) calls these to connect a client to
// a process; cmd/podvisor adapts them to its Backend interface.

// StreamOptions say which streams a client asked for.
type StreamOptions struct {
	Stdin, Stdout, Stderr, TTY bool
}

// StreamSession is a client's connection to a process's stdio. Close
// unblocks pending reads and writes.
type StreamSession interface {
	Stdin() io.WriteCloser
	Stdout() io.Reader
	Stderr() io.Reader
	Resize(ctx context.Context, rows, cols uint16) error
	Close() error
}

// ExecStreamSession is a session with an exec'd process.
type ExecStreamSession interface {
	StreamSession
	// Wait returns the exit code, 128+n for signal n.
	Wait(ctx context.Context) (int, error)
}

// ExecStream starts cmd in a running container for a streaming client.
func (s *Service) ExecStream(ctx context.Context, containerID string, cmd []string, o StreamOptions) (ExecStreamSession, error) {
	if len(cmd) == 0 {
		return nil, invalid("cmd", "is empty")
	}
	p, err := s.startExec(ctx, containerID, cmd, o.TTY, o.Stdin)
	if err != nil {
		return nil, fmt.Errorf("exec in container %s: %w", containerID, err)
	}
	return &execSession{s: s, p: p, o: o}, nil
}

type execSession struct {
	s    *Service
	p    Process
	o    StreamOptions
	once sync.Once
}

func (e *execSession) Stdin() io.WriteCloser { return e.p.Stdin() }
func (e *execSession) Stdout() io.Reader {
	if !e.o.Stdout && !e.o.TTY {
		return nil
	}
	return e.p.Stdout()
}
func (e *execSession) Stderr() io.Reader {
	if !e.o.Stderr || e.o.TTY {
		return nil
	}
	return e.p.Stderr()
}
func (e *execSession) Resize(ctx context.Context, rows, cols uint16) error {
	return e.p.Resize(ctx, rows, cols)
}
func (e *execSession) Wait(ctx context.Context) (int, error) {
	es, err := e.p.Wait(ctx)
	if err != nil {
		return 0, err
	}
	return int(exitCode(es)), nil
}

// Close kills the process if it still runs and forgets it.
func (e *execSession) Close() error {
	e.once.Do(func() {
		e.p.Signal(e.s.svcCtx, syscall.SIGKILL)
		e.s.forgetExec(e.p)
	})
	return nil
}

// AttachStream connects a client to a running container's init process:
// it receives the output from now on and may write to its stdin.
func (s *Service) AttachStream(_ context.Context, containerID string, o StreamOptions) (StreamSession, error) {
	c, err := s.runningContainer(containerID)
	if err != nil {
		return nil, fmt.Errorf("attach: %w", err)
	}
	t, ok := s.task(c.ID)
	if !ok {
		return nil, fmt.Errorf("attach: container %s has no live process: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	cfg := c.Metadata.Config
	if o.Stdin && !cfg.Stdin {
		return nil, invalid("stdin", "container %s was not created with stdin", c.ID)
	}
	a := &attachSession{t: t, closeStdin: cfg.StdinOnce && !cfg.Tty}
	if o.Stdout || o.TTY {
		r, w := io.Pipe()
		a.out, a.removes = r, append(a.removes, t.io.stdout.add(w))
		a.pipes = append(a.pipes, r)
	}
	if o.Stderr && !o.TTY {
		r, w := io.Pipe()
		a.err, a.removes = r, append(a.removes, t.io.stderr.add(w))
		a.pipes = append(a.pipes, r)
	}
	if o.Stdin && t.io.stdin != nil {
		a.in = &attachStdin{a: a}
	}
	return a, nil
}

type attachSession struct {
	t          *task
	in         io.WriteCloser
	out, err   io.Reader
	pipes      []*io.PipeReader
	removes    []func()
	closeStdin bool
	mu         sync.Mutex
	closed     bool
}

func (a *attachSession) Stdin() io.WriteCloser { return a.in }
func (a *attachSession) Stdout() io.Reader     { return a.out }
func (a *attachSession) Stderr() io.Reader     { return a.err }
func (a *attachSession) Resize(ctx context.Context, rows, cols uint16) error {
	return a.t.proc.Resize(ctx, rows, cols)
}

// Close detaches; the container keeps running.
func (a *attachSession) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	for _, rm := range a.removes {
		rm()
	}
	for _, p := range a.pipes {
		p.Close()
	}
	return nil
}

// attachStdin writes to the container's stdin; closing it closes the
// container's stdin only for StdinOnce containers without a TTY.
type attachStdin struct{ a *attachSession }

func (w *attachStdin) Write(b []byte) (int, error) {
	w.a.mu.Lock()
	closed := w.a.closed
	w.a.mu.Unlock()
	if closed {
		return 0, io.ErrClosedPipe
	}
	return w.a.t.io.stdin.Write(b)
}

func (w *attachStdin) Close() error {
	if w.a.closeStdin {
		return w.a.t.io.stdin.Close()
	}
	return nil
}

// PortForwardStream dials port on the pod's loopback inside its VM.
func (s *Service) PortForwardStream(ctx context.Context, sandboxID string, port int32) (io.ReadWriteCloser, error) {
	if port < 1 || port > 65535 {
		return nil, invalid("port", "%d out of range 1-65535", port)
	}
	sb, err := s.sandboxes.Get(sandboxID)
	if err != nil {
		return nil, fmt.Errorf("port forward: %w", err)
	}
	vm, ok := s.vm(sb.ID)
	if !ok || sb.Status.State != sandbox.StateReady {
		return nil, fmt.Errorf("port forward: pod sandbox %s is not ready: %w", sb.ID, errdefs.ErrFailedPrecondition)
	}
	return vm.DialPort(ctx, port)
}
