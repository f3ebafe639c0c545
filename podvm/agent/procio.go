package agent

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// drainIdle is how long output may stay silent after the process exited
// before the copy stops. The process's own output is already in the pipe when
// it exits and reads return at once; a pipe that stays open and silent
// is held by a descendant left running in the background (`sh -c 'd &'`),
// and WaitProcess must not wait for that.
const drainIdle = 500 * time.Millisecond

const copyBufferSize = 32 << 10

// processIO is the agent's side of a process's stdio: the files the child
// gets, the agent's ends of them, and the host's streams.
type processIO struct {
	streams streams
	// child holds the child's stdin, stdout and stderr until the fork.
	child [3]*os.File
	// input is where the stdin stream is written: a pipe or the pty master.
	input *os.File
	// outputs are the agent's read ends, each paired with its stream (nil:
	// read and discarded, so the process never blocks on a full pipe).
	outputs []output
	// master is the pty master; nil without a terminal.
	master *os.File

	aborted   atomic.Bool
	closeOnce sync.Once
}

type output struct {
	src *os.File
	dst *stream
}

// newProcessIO creates the pipes or the pty for a process. Streams that were
// not requested are connected to /dev/null.
func newProcessIO(st streams, terminal bool, rows, cols uint32) (_ *processIO, retErr error) {
	pio := &processIO{streams: st}
	defer func() {
		if retErr != nil {
			pio.closeChild()
			pio.closeOwn()
		}
	}()
	if terminal {
		return pio, pio.openTerminal(rows, cols)
	}
	var err error
	if pio.child[0], pio.input, err = inputPipe(st.stdin); err != nil {
		return nil, fmt.Errorf("stdin: %w", err)
	}
	for i, dst := range []*stream{st.stdout, st.stderr} {
		src, w, err := outputPipe(dst)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", StreamKind(i+1), err)
		}
		pio.child[i+1] = w
		if src != nil {
			pio.outputs = append(pio.outputs, output{src: src, dst: dst})
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
func (pio *processIO) openTerminal(rows, cols uint32) error {
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
	if pio.master, err = pollable(master); err != nil {
		return fmt.Errorf("pty master: %w", err)
	}
	pio.input = pio.master
	pio.outputs = []output{{src: pio.master, dst: pio.streams.stdout}}
	return nil
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

// closeOwn closes the agent's ends and the streams.
func (pio *processIO) closeOwn() {
	pio.closeOnce.Do(func() {
		pio.streams.closeAll()
		if pio.input != nil {
			_ = pio.input.Close()
		}
		for _, o := range pio.outputs {
			_ = o.src.Close()
		}
	})
}

// startCopies starts copying the streams. wait returns when every output has
// reached its end; the stdin copy ends by itself once the stream or the
// process's stdin is closed.
func (pio *processIO) startCopies(id string, exited <-chan struct{}) (wait func()) {
	if pio.streams.stdin != nil {
		go pio.copyInput(id)
	}
	var wg sync.WaitGroup
	for _, o := range pio.outputs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pio.copyOutput(id, o, exited)
			if o.dst != nil {
				o.dst.closeWrite()
			}
		}()
	}
	return wg.Wait
}

// copyInput feeds the stdin stream to the process. At the end of the stream
// the process's stdin pipe is closed so that it sees EOF; a pty master stays
// open, as closing it would hang up the terminal.
func (pio *processIO) copyInput(id string) {
	buf := make([]byte, copyBufferSize)
	_, err := io.CopyBuffer(pio.input, pio.streams.stdin.rwc, buf)
	if err != nil {
		klog.V(4).InfoS("Stdin copy ended", "processID", id, "err", err)
	}
	if pio.master == nil {
		_ = pio.input.Close()
	}
}

// copyOutput copies one output of the process to its stream until EOF (for a
// pty: EIO once every slave is closed), or until the output stays silent for
// drainIdle after the process exited, or until abort.
func (pio *processIO) copyOutput(id string, o output, exited <-chan struct{}) {
	buf := make([]byte, copyBufferSize)
	var dst io.Writer
	if o.dst != nil {
		dst = o.dst.rwc
	}
	for !pio.aborted.Load() {
		select {
		case <-exited:
			_ = o.src.SetReadDeadline(time.Now().Add(drainIdle))
		default:
		}
		n, err := o.src.Read(buf)
		if n > 0 && dst != nil {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				// The host stopped reading. Keep draining so the process
				// does not block on a full pipe.
				klog.V(2).InfoS("Output stream closed by the host", "processID", id, "err", werr)
				dst = nil
			}
		}
		if err != nil {
			return
		}
	}
}

// exited interrupts output reads that are waiting for data, so they start
// counting drainIdle.
func (pio *processIO) exited() {
	deadline := time.Now().Add(drainIdle)
	for _, o := range pio.outputs {
		_ = o.src.SetReadDeadline(deadline)
	}
}

// abort stops the copies of an exited process now, whatever is left.
func (pio *processIO) abort() {
	pio.aborted.Store(true)
	for _, o := range pio.outputs {
		_ = o.src.SetReadDeadline(time.Unix(1, 0))
	}
	pio.streams.closeAll()
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

// newConsoleIO wraps the pty master of a process whose terminal runc
// created; the agent holds no slave.
func newConsoleIO(st streams, master *os.File, rows, cols uint32) (*processIO, error) {
	m, err := pollable(master)
	if err != nil {
		return nil, fmt.Errorf("pty master: %w", err)
	}
	pio := &processIO{streams: st, master: m, input: m}
	pio.outputs = []output{{src: m, dst: st.stdout}}
	if rows != 0 || cols != 0 {
		if err := pio.resize(rows, cols); err != nil {
			pio.closeOwn()
			return nil, fmt.Errorf("set pty size: %w", err)
		}
	}
	return pio, nil
}
