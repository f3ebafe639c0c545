package main

import (
	"context"
	"io"

	"github.com/podvisor/podvisor/cri"
	"github.com/podvisor/podvisor/cri/streaming"
)

// streamBackend serves the streaming server's Backend from the CRI service.
type streamBackend struct{ svc *cri.Service }

var _ streaming.Backend = streamBackend{}

func criStreamOptions(o streaming.StreamOptions) cri.StreamOptions {
	return cri.StreamOptions{Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr, TTY: o.TTY}
}

func (b streamBackend) Exec(ctx context.Context, containerID string, opts streaming.ExecOptions) (streaming.ExecSession, error) {
	s, err := b.svc.ExecStream(ctx, containerID, opts.Cmd, criStreamOptions(opts.StreamOptions))
	if err != nil {
		return nil, err
	}
	return execSession{session{s}, s}, nil
}

func (b streamBackend) Attach(ctx context.Context, containerID string, opts streaming.StreamOptions) (streaming.Session, error) {
	s, err := b.svc.AttachStream(ctx, containerID, criStreamOptions(opts))
	if err != nil {
		return nil, err
	}
	return session{s}, nil
}

func (b streamBackend) PortForward(ctx context.Context, sandboxID string, port int32) (io.ReadWriteCloser, error) {
	return b.svc.PortForwardStream(ctx, sandboxID, port)
}

type session struct{ s cri.StreamSession }

func (s session) Stdin() io.WriteCloser { return s.s.Stdin() }
func (s session) Stdout() io.Reader     { return s.s.Stdout() }
func (s session) Stderr() io.Reader     { return s.s.Stderr() }
func (s session) Close() error          { return s.s.Close() }
func (s session) Resize(ctx context.Context, size streaming.TerminalSize) error {
	return s.s.Resize(ctx, size.Rows, size.Cols)
}

type execSession struct {
	session
	e cri.ExecStreamSession
}

func (s execSession) Wait(ctx context.Context) (int, error) { return s.e.Wait(ctx) }
