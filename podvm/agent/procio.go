package agent

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// drainIdle is how long output may stay silent after the process exited
// before the copy stops. The process's own output is already in the pipe when
// it exits and reads return at once; a pipe that stays open and silent
// is held by a descendant left running in the background (`sh -c 'd &'`),
// and WaitProcess must not wait for that.
const drainIdle = 500 * time.Millisecond

const copyBufferSize = 32 << 10

// processIO is the agent's side of a process's stdio: the files the child
// gets, the agent's ends of them, and the host's streams attached to those.
type processIO struct {
	// initial are the streams the process was started with, until
	// startCopies attaches them.
	initial streams
	// child holds the child's stdin, stdout and stderr until the fork.
	child [3]*os.File
	// in feeds the stdin stream to a pipe or the pty master; nil when the
	// process was started without a stdin stream.
	in *input
	// outs read the agent's ends of the outputs: stdout and stderr, or the
	// pty master.
	outs []*output
	// master is the pty master; nil without a terminal.
	master *os.File

	aborted   atomic.Bool
	closeOnce sync.Once
}

// newProcessIO creates the pipes or the pty for process id. Streams that
// were not requested are connected to /dev/null.
func newProcessIO(id string, st streams, terminal bool, rows, cols uint32) (_ *processIO, retErr error) {
	pio := &processIO{initial: st}
	defer func() {
		if retErr != nil {
			pio.closeChild()
			pio.closeOwn()
		}
	}()
	if terminal {
		return pio, pio.openTerminal(id, rows, cols)
	}
	var w *os.File
	var err error
	if pio.child[0], w, err = inputPipe(st.stdin); err != nil {
		return nil, fmt.Errorf("stdin: %w", err)
	}
	if w != nil {
		pio.in = &input{processID: id, f: w}
	}
	for i, dst := range []*stream{st.stdout, st.stderr} {
		kind := StreamKind(i + 1)
		src, w, err := outputPipe(dst)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kind, err)
		}
		pio.child[i+1] = w
		if src != nil {
			pio.outs = append(pio.outs, newOutput(id, kind, src, true))
		}
	}
	return pio, nil
}

func inputPipe(st *stream) (child, own *os.File, err error) {
	if st == nil {
		f, err := os.Open(os.DevNull)
		return f, nil, err
	}
	r, w, err := os.Pipe()
	return r, w, err
}

func outputPipe(st *stream) (own, child *os.File, err error) {
	if st == nil {
		f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		return nil, f, err
	}
	return os.Pipe()
}

// openTerminal gives the child a pty slave as stdin, stdout and stderr.
func (pio *processIO) openTerminal(id string, rows, cols uint32) error {
	master, slave, err := pty.Open()
	if err != nil {
		return fmt.Errorf("open pty: %w", err)
	}
	pio.child = [3]*os.File{slave, slave, slave}
	if rows != 0 || cols != 0 {
		if err := pty.Setsize(slave, &pty.Winsize{Rows: uint16(rows), Cols: uint16(cols)}); err != nil {
			_ = master.Close()
			return fmt.Errorf("set pty size: %w", err)
		}
	}
	m, err := pollable(master)
	if err != nil {
		return fmt.Errorf("pty master: %w", err)
	}
	pio.useMaster(id, m)
	return nil
}

// useMaster makes the pty master m the process's stdin and output.
func (pio *processIO) useMaster(id string, m *os.File) {
	pio.master = m
	if pio.initial.stdin != nil {
		pio.in = &input{processID: id, f: m, pty: true}
	}
	// The master is read even when the host did not ask for the output:
	// a terminal whose output nobody reads blocks the process.
	pio.outs = []*output{newOutput(id, StreamStdout, m, pio.initial.stdout != nil)}
}

// pollable returns f re-opened in non-blocking mode and closes f. pty.Open
// leaves the master in blocking mode (it calls Fd), where read deadlines do
// not work and Close does not interrupt a blocked Read; the copy loops need
// both.
func pollable(f *os.File) (*os.File, error) {
	defer f.Close()
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// childFds returns the descriptors the child gets as 0, 1 and 2. Fd puts
// them in blocking mode, which is what the child expects.
func (pio *processIO) childFds() []uintptr {
	return []uintptr{pio.child[0].Fd(), pio.child[1].Fd(), pio.child[2].Fd()}
}

// closeChild closes the agent's copies of the child's files. It must run
// after the fork: an output reaches EOF only when every write end is closed.
func (pio *processIO) closeChild() {
	seen := map[*os.File]bool{}
	for _, f := range pio.child {
		if f != nil && !seen[f] {
			seen[f] = true
			_ = f.Close()
		}
	}
}

// closeOwn closes the agent's ends, the stdin stream, and the streams not
// yet attached. Attached output streams stay open until the host is done
// with them, or the process is removed: the host may still acknowledge
// output.
func (pio *processIO) closeOwn() {
	pio.closeOnce.Do(func() {
		pio.initial.closeAll()
		if pio.in != nil {
			pio.in.close()
		}
		for _, o := range pio.outs {
			_ = o.src.Close()
		}
	})
}

// has reports whether the process was started with a stream of kind.
func (pio *processIO) has(kind StreamKind) bool {
	if kind == StreamStdin {
		return pio.in != nil
	}
	for _, o := range pio.outs {
		if o.kind == kind {
			return o.keep
		}
	}
	return false
}

// attach connects st's streams to the process in place of those attached.
// The process must have been started with each of them (see has).
func (pio *processIO) attach(st streams) {
	if st.stdin != nil {
		pio.in.attach(st.stdin)
	}
	for _, o := range pio.outs {
		if s := st.of(o.kind); s != nil {
			o.attach(s, st.acks)
		}
	}
}

// startCopies attaches the streams the process was started with and starts
// reading its outputs. It runs before the process is published, so that an
// AttachStdio cannot come first.
func (pio *processIO) startCopies(exited <-chan struct{}) {
	pio.attach(pio.initial)
	pio.initial = streams{}
	for _, o := range pio.outs {
		go o.copy(exited, &pio.aborted)
	}
}

// waitCopied waits until every output has reached its end and been written
// to its stream, or kept for a host that is away.
func (pio *processIO) waitCopied() {
	for _, o := range pio.outs {
		o.waitCopied()
	}
}

// exited interrupts output reads that are waiting for data, so they start
// counting drainIdle.
func (pio *processIO) exited() {
	deadline := time.Now().Add(drainIdle)
	for _, o := range pio.outs {
		_ = o.src.SetReadDeadline(deadline)
	}
}

// abort stops the copies of an exited process now, whatever is left, drops
// the output kept for the host and closes the streams.
func (pio *processIO) abort() {
	pio.aborted.Store(true)
	for _, o := range pio.outs {
		_ = o.src.SetReadDeadline(time.Unix(1, 0))
		o.close()
	}
	if pio.in != nil {
		pio.in.close()
	}
}

// resize sets the window size of the terminal.
func (pio *processIO) resize(rows, cols uint32) error {
	if pio.master == nil {
		return nil
	}
	rc, err := pio.master.SyscallConn()
	if err != nil {
		return err
	}
	ws := &unix.Winsize{Row: uint16(rows), Col: uint16(cols)}
	var ioctlErr error
	if err := rc.Control(func(fd uintptr) {
		ioctlErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws)
	}); err != nil {
		return err
	}
	return ioctlErr
}

// newConsoleIO wraps the pty master of process id, whose terminal runc
// created; the agent holds no slave.
func newConsoleIO(id string, st streams, master *os.File, rows, cols uint32) (*processIO, error) {
	m, err := pollable(master)
	if err != nil {
		return nil, fmt.Errorf("pty master: %w", err)
	}
	pio := &processIO{initial: st}
	pio.useMaster(id, m)
	if rows != 0 || cols != 0 {
		if err := pio.resize(rows, cols); err != nil {
			pio.closeOwn()
			return nil, fmt.Errorf("set pty size: %w", err)
		}
	}
	return pio, nil
}
