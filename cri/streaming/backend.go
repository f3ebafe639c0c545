package streaming

import (
	"context"
	"io"
)

// Backend runs the processes and dials the ports that client streams are
// connected to. The rest of cri implements it on top of pod VMs; the
// streaming server only moves bytes, exit codes and terminal sizes between
// it and the client.
//
// Each call is bounded by ctx, which ends when the client's request is over;
// sessions and connections must not outlive their Close.
type Backend interface {
	// Exec starts cmd in the container.
	Exec(ctx context.Context, containerID string, opts ExecOptions) (ExecSession, error)
	// Attach connects to the stdio of the container's main process.
	Attach(ctx context.Context, containerID string, opts StreamOptions) (Session, error)
	// PortForward dials port on the pod's loopback from inside the pod
	// sandbox. The connection may implement CloseWrite() error: it is
	// half-closed when the client stops sending, so that a peer waiting
	// for end of input can answer.
	PortForward(ctx context.Context, podSandboxID string, port int32) (io.ReadWriteCloser, error)
}

// StreamOptions say which streams the client asked for.
type StreamOptions struct {
	Stdin, Stdout, Stderr bool
	// TTY gives the process a terminal: its stdout and stderr both go to
	// Stdout, and Stderr is never requested with it.
	TTY bool
}

// ExecOptions describe a process to run in a container.
type ExecOptions struct {
	Cmd []string
	StreamOptions
}

// TerminalSize is the size of a client's terminal, in characters.
type TerminalSize struct {
	Rows, Cols uint16
}

// Session is a client's connection to a process's stdio.
//
// Stdin, Stdout and Stderr return nil for streams that were not requested.
// The output readers end with io.EOF once the process has closed them (it
// exited) and all of its output has been read.
//
// All methods may be called concurrently, and Close must unblock every
// pending Read, Write and Wait. Writes to Stdin after Close fail.
type Session interface {
	// Stdin is the process's input. Close sends it end of file; for
	// Attach, the backend closes the container's stdin only when the
	// container was created with StdinOnce and without a TTY (as
	// containerd does, see kubernetes/kubectl#52686), and otherwise only
	// ends this client's input.
	Stdin() io.WriteCloser
	Stdout() io.Reader
	Stderr() io.Reader
	// Resize changes the size of the process's terminal.
	Resize(ctx context.Context, size TerminalSize) error
	// Close ends the session. An exec'd process still running is killed;
	// an attached container is left running, detached.
	Close() error
}

// ExecSession is a session with a process started by Exec.
type ExecSession interface {
	Session
	// Wait returns the process's exit code once it has exited: 0 to 255,
	// 128+n for a process killed by signal n, as shells report it. The
	// error is set only when the exit status cannot be known.
	Wait(ctx context.Context) (exitCode int, err error)
}
