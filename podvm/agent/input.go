package agent

import (
	"errors"
	"io"
	"os"
	"sync"

	"k8s.io/klog/v2"
)

// input feeds the host's stdin stream to the process. A stream that ends
// cleanly (the host half-closed it) closes the process's stdin, so that the
// process reads EOF; one that breaks because the host went away leaves it
// open for the stream of the next host (AttachStdio). A pty master is never
// closed here: that would hang up the terminal, whose output still needs it.
type input struct {
	processID string
	f         *os.File // a pipe's write end, or the pty master
	pty       bool

	mu     sync.Mutex
	cur    *stream // the attached stream; nil when none
	closed bool    // the process's stdin is closed, or the process is done

	// writeMu keeps the writes of a replaced stream's copy before those of
	// the stream that replaced it.
	writeMu sync.Mutex
}

// attach makes st the process's stdin stream in place of any attached one,
// which is closed. If the process's stdin is closed, so is st.
func (in *input) attach(st *stream) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		st.close()
		return
	}
	old := in.cur
	in.cur = st
	in.mu.Unlock()
	if old != nil {
		old.close()
	}
	go in.copy(st)
}

// copy feeds st to the process until st ends, breaks or is replaced.
func (in *input) copy(st *stream) {
	defer in.detach(st)
	buf := make([]byte, copyBufferSize)
	for {
		n, err := st.rwc.Read(buf)
		if n > 0 && !in.write(st, buf[:n]) {
			return
		}
		switch {
		case errors.Is(err, io.EOF):
			in.end()
			return
		case err != nil:
			klog.V(2).InfoS("Stdin stream broken; the process's stdin stays open for the next host",
				"processID", in.processID, "err", err)
			return
		}
	}
}

// write writes b to the process's stdin if st is still its stream.
func (in *input) write(st *stream, b []byte) bool {
	in.writeMu.Lock()
	defer in.writeMu.Unlock()
	in.mu.Lock()
	current := in.cur == st && !in.closed
	in.mu.Unlock()
	if !current {
		return false
	}
	if _, err := in.f.Write(b); err != nil {
		// The process closed its stdin or is gone.
		klog.V(4).InfoS("Stdin copy ended", "processID", in.processID, "err", err)
		in.end()
		return false
	}
	return true
}

// end closes the process's stdin: the host ended it, or the process takes
// no more.
func (in *input) end() {
	if in.pty {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.closed {
		in.closed = true
		_ = in.f.Close()
	}
}

// detach closes st, whose copy has ended.
func (in *input) detach(st *stream) {
	st.close()
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cur == st {
		in.cur = nil
	}
}

// close closes the attached stream and the process's stdin (but not a pty
// master): the process is done.
func (in *input) close() {
	in.mu.Lock()
	cur := in.cur
	in.cur = nil
	wasClosed := in.closed
	in.closed = true
	in.mu.Unlock()
	if cur != nil {
		cur.close()
	}
	if !wasClosed && !in.pty {
		_ = in.f.Close()
	}
}
