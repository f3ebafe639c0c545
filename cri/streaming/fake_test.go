package streaming

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
)

// fakeBackend runs fake processes: each command is a Go function over the
// process's pipes.
type fakeBackend struct {
	mu       sync.Mutex
	execs    []ExecOptions
	sessions []*fakeSession

	// dial serves PortForward; nil refuses.
	dial func(podSandboxID string, port int32) (io.ReadWriteCloser, error)
}

var _ Backend = (*fakeBackend)(nil)

// proc is the body of a fake process; it returns the exit code.
type proc func(p *fakeSession) int

// commands are the fake programs Exec knows.
var commands = map[string]func(args []string) proc{
	"exit": func(args []string) proc {
		return func(*fakeSession) int { n, _ := strconv.Atoi(args[0]); return n }
	},
	"echo": func(args []string) proc {
		return func(p *fakeSession) int { fmt.Fprintln(p.out(), strings.Join(args, " ")); return 0 }
	},
	"warn": func(args []string) proc {
		return func(p *fakeSession) int { fmt.Fprintln(p.errw(), strings.Join(args, " ")); return 1 }
	},
	// cat copies stdin to stdout.
	"cat": func([]string) proc {
		return func(p *fakeSession) int { io.Copy(p.out(), p.stdinR); return 0 }
	},
	// size prints the terminal sizes it is given, until stdin ends.
	"size": func([]string) proc {
		return func(p *fakeSession) int {
			stdinDone := make(chan struct{})
			go func() { io.Copy(io.Discard, p.stdinR); close(stdinDone) }()
			for {
				select {
				case s := <-p.resizes:
					fmt.Fprintf(p.out(), "%dx%d\n", s.Rows, s.Cols)
				case <-stdinDone:
					return 0
				}
			}
		}
	},
	// sleep runs until killed.
	"sleep": func([]string) proc {
		return func(p *fakeSession) int { <-p.closed; return 137 }
	},
	// daemon exits at once but leaves its stdout to a background child
	// that never closes it.
	"daemon": func([]string) proc {
		return func(p *fakeSession) int { fmt.Fprintln(p.out(), "started"); p.keepOutput = true; return 0 }
	},
}

func (b *fakeBackend) Exec(ctx context.Context, containerID string, opts ExecOptions) (ExecSession, error) {
	if containerID != "ctr" {
		return nil, fmt.Errorf("container %q: not found", containerID)
	}
	if len(opts.Cmd) == 0 || commands[opts.Cmd[0]] == nil {
		return nil, fmt.Errorf("%q: executable file not found", opts.Cmd)
	}
	s := newFakeSession(opts.StreamOptions)
	b.mu.Lock()
	b.execs = append(b.execs, opts)
	b.sessions = append(b.sessions, s)
	b.mu.Unlock()
	s.start(commands[opts.Cmd[0]](opts.Cmd[1:]))
	return s, nil
}

// Attach connects to a container whose main process is a shell that
// answers each line of input, ending at the end of its input as with
// StdinOnce.
func (b *fakeBackend) Attach(ctx context.Context, containerID string, opts StreamOptions) (Session, error) {
	if containerID != "ctr" {
		return nil, fmt.Errorf("container %q: not found", containerID)
	}
	s := newFakeSession(opts)
	b.mu.Lock()
	b.sessions = append(b.sessions, s)
	b.mu.Unlock()
	s.start(func(p *fakeSession) int {
		sc := bufio.NewScanner(p.stdinR)
		for sc.Scan() {
			fmt.Fprintf(p.out(), "sh: %s\n", sc.Text())
			fmt.Fprintf(p.errw(), "sh-err: %s\n", sc.Text())
		}
		return 0
	})
	return s, nil
}

func (b *fakeBackend) PortForward(ctx context.Context, podSandboxID string, port int32) (io.ReadWriteCloser, error) {
	if b.dial == nil {
		return nil, errors.New("connection refused")
	}
	return b.dial(podSandboxID, port)
}

func (b *fakeBackend) lastSession() *fakeSession {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sessions[len(b.sessions)-1]
}

// fakeSession is a process's stdio as pipes.
type fakeSession struct {
	opts             StreamOptions
	stdinR           *io.PipeReader
	stdinW           *io.PipeWriter
	stdoutR, stderrR *io.PipeReader
	stdoutW, stderrW *io.PipeWriter
	resizes          chan TerminalSize
	exited           chan int
	closed           chan struct{}
	closeOnce        sync.Once
	// keepOutput is set by a process whose outputs stay open after it
	// exits.
	keepOutput bool
}

func newFakeSession(opts StreamOptions) *fakeSession {
	s := &fakeSession{
		opts:    opts,
		resizes: make(chan TerminalSize, 16),
		exited:  make(chan int, 1),
		closed:  make(chan struct{}),
	}
	s.stdinR, s.stdinW = io.Pipe()
	s.stdoutR, s.stdoutW = io.Pipe()
	s.stderrR, s.stderrW = io.Pipe()
	if !opts.Stdin {
		s.stdinW.Close() // reads /dev/null
	}
	return s
}

// out is where the process writes its stdout: the pipe, or nowhere when
// the client did not ask for it.
func (s *fakeSession) out() io.Writer {
	if s.opts.Stdout {
		return s.stdoutW
	}
	return io.Discard
}

// errw is the process's stderr; with a terminal, stdout.
func (s *fakeSession) errw() io.Writer {
	switch {
	case s.opts.TTY:
		return s.out()
	case s.opts.Stderr:
		return s.stderrW
	}
	return io.Discard
}

func (s *fakeSession) start(body proc) {
	go func() {
		code := body(s)
		if !s.keepOutput {
			s.stdoutW.Close()
			s.stderrW.Close()
		}
		s.exited <- code
	}()
}

func (s *fakeSession) Stdin() io.WriteCloser {
	if !s.opts.Stdin {
		return nil
	}
	return s.stdinW
}

func (s *fakeSession) Stdout() io.Reader {
	if !s.opts.Stdout {
		return nil
	}
	return s.stdoutR
}

func (s *fakeSession) Stderr() io.Reader {
	if !s.opts.Stderr || s.opts.TTY {
		return nil
	}
	return s.stderrR
}

func (s *fakeSession) Resize(ctx context.Context, size TerminalSize) error {
	if !s.opts.TTY {
		return errors.New("no terminal")
	}
	select {
	case s.resizes <- size:
		return nil
	case <-s.closed:
		return errors.New("session closed")
	}
}

func (s *fakeSession) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		for _, p := range []*io.PipeReader{s.stdinR, s.stdoutR, s.stderrR} {
			p.CloseWithError(io.ErrClosedPipe)
		}
	})
	return nil
}

func (s *fakeSession) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

func (s *fakeSession) Wait(ctx context.Context) (int, error) {
	select {
	case code := <-s.exited:
		return code, nil
	case <-s.closed:
		return 0, errors.New("session closed")
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// echoServer accepts connections and echoes them, half-closing when the
// peer does.
func echoServer(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
			c.(*net.TCPConn).CloseWrite()
		}()
	}
}
