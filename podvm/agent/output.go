package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"
)

// maxBufferedOutput bounds the output of one stream that the agent holds for
// the host: output written while no host stream is attached (the host
// restarted, or its session broke), and output sent but not yet
// acknowledged. A detached process that writes more loses its oldest output,
// not its newest, which is what a reader of its log wants.
const maxBufferedOutput = 4 << 20

// ackSize is the size of an acknowledgement on an output stream: the number
// of bytes the host has read from the stream so far, big-endian.
const ackSize = 8

// output carries one output of a process (stdout, stderr, or a terminal's
// output) from the agent's read end to whichever host stream is attached.
//
// The reader (copy) adds what the process writes to buf; a sender per
// attached stream writes buf out. While a stream is attached, a full buf
// makes the reader, and so the process, wait, as a full stream always did;
// while none is, the process never waits, and buf keeps the newest
// maxBufferedOutput bytes for the next AttachStdio. When the host
// acknowledges what it reads, sent output stays in buf until acknowledged,
// so that what a host had not read when it went away is sent again to the
// next one.
type output struct {
	processID string
	kind      StreamKind
	src       *os.File
	// keep is false for a terminal's output the host did not ask for: it
	// is read and dropped.
	keep bool

	mu      sync.Mutex
	changed *sync.Cond // broadcast on every change of the fields below
	buf     outputBuffer
	att     *attachment // nil while no stream is attached
	ended   bool        // src has ended: buf gets nothing more
	closed  bool        // the process was removed: buf is gone
	dropped uint64      // bytes dropped since the last attachment
}

// attachment is one host stream attached to an output. Its fields are
// guarded by the output's mu.
type attachment struct {
	st   *stream
	acks bool
	// base is the output offset the stream started at: acknowledgements
	// count from there.
	base uint64
	// sent is the offset up to which buf was written to st; sending is the
	// end of the write in progress, which the host may acknowledge before
	// the write returns.
	sent, sending uint64
	// flushed: the output ended and all of it was written to st.
	flushed bool
	// failed: st broke; the sender and acknowledgement reader stop.
	failed bool
	// running counts the sender and acknowledgement reader; the last to
	// end detaches the attachment.
	running int
}

func newOutput(processID string, kind StreamKind, src *os.File, keep bool) *output {
	o := &output{processID: processID, kind: kind, src: src, keep: keep}
	o.changed = sync.NewCond(&o.mu)
	return o
}

// copy reads the process's output into buf until EOF (for a pty: EIO once
// every slave is closed), or until it stays silent for drainIdle after the
// process exited, or until abort.
func (o *output) copy(exited <-chan struct{}, aborted *atomic.Bool) {
	buf := make([]byte, copyBufferSize)
	for !aborted.Load() {
		select {
		case <-exited:
			_ = o.src.SetReadDeadline(time.Now().Add(drainIdle))
		default:
		}
		n, err := o.src.Read(buf)
		if n > 0 {
			o.put(buf[:n])
		}
		if err != nil {
			break
		}
	}
	o.mu.Lock()
	o.ended = true
	o.changed.Broadcast()
	o.mu.Unlock()
}

// put adds b to buf, waiting for room while a stream is attached and
// dropping the oldest output while none is.
func (o *output) put(b []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.keep {
		return
	}
	for o.att != nil && !o.closed && o.buf.len()+len(b) > maxBufferedOutput {
		o.changed.Wait()
	}
	if o.closed {
		return
	}
	if n := o.buf.write(b, maxBufferedOutput); n > 0 {
		if o.dropped == 0 {
			klog.InfoS("No host attached and the output buffer is full: dropping the oldest output",
				"processID", o.processID, "stream", o.kind, "limitBytes", maxBufferedOutput)
		}
		o.dropped += uint64(n)
	}
	o.changed.Broadcast()
}

// attach makes st the output's stream in place of any attached one, which
// is closed. The new stream gets everything in buf first.
func (o *output) attach(st *stream, acks bool) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		st.close()
		return
	}
	old := o.att
	a := &attachment{st: st, acks: acks, base: o.buf.start, sent: o.buf.start, sending: o.buf.start, running: 1}
	if acks {
		a.running++
	}
	o.att = a
	if o.dropped > 0 {
		klog.InfoS("Output was dropped while no host was attached",
			"processID", o.processID, "stream", o.kind, "bytes", o.dropped)
		o.dropped = 0
	}
	o.changed.Broadcast()
	o.mu.Unlock()
	if old != nil {
		old.st.close()
	}
	go o.send(a)
	if acks {
		go o.readAcks(a)
	}
}

// send writes buf to a's stream from a.sent on, until the output ended and
// all of it is written, or the stream fails, or a is replaced.
func (o *output) send(a *attachment) {
	defer o.stopped(a)
	chunk := make([]byte, copyBufferSize)
	for {
		o.mu.Lock()
		for o.att == a && !a.failed && a.sent == o.buf.end() && !o.ended {
			o.changed.Wait()
		}
		if o.att != a || a.failed {
			o.mu.Unlock()
			return
		}
		if a.sent == o.buf.end() {
			o.mu.Unlock()
			a.st.closeWrite()
			o.mu.Lock()
			a.flushed = true
			o.changed.Broadcast()
			o.mu.Unlock()
			return
		}
		n := o.buf.read(a.sent, chunk)
		a.sending = a.sent + uint64(n)
		o.mu.Unlock()

		w, err := a.st.rwc.Write(chunk[:n])

		o.mu.Lock()
		if o.att == a {
			a.sent = max(a.sent+uint64(w), o.buf.start)
			a.sending = a.sent
			if !a.acks {
				o.buf.discard(a.sent)
			}
			o.changed.Broadcast()
		}
		o.mu.Unlock()
		if err != nil {
			o.fail(a, err)
			return
		}
	}
}

// readAcks applies the host's acknowledgements on a's stream: what the host
// has read is dropped from buf.
func (o *output) readAcks(a *attachment) {
	defer o.stopped(a)
	var b [ackSize]byte
	for {
		_, err := io.ReadFull(a.st.rwc, b[:])
		o.mu.Lock()
		if err == nil && o.att == a {
			err = o.ack(a, binary.BigEndian.Uint64(b[:]))
		}
		if errors.Is(err, io.EOF) && o.att == a {
			// The host closed its end: it reads no more, so nothing more
			// is acknowledged, and what is written counts as delivered.
			a.acks = false
			o.buf.discard(a.sent)
			o.changed.Broadcast()
		}
		o.mu.Unlock()
		switch {
		case errors.Is(err, io.EOF):
			return
		case err != nil:
			o.fail(a, err)
			return
		}
	}
}

// ack drops from buf the n bytes the host has read from a's stream.
func (o *output) ack(a *attachment, n uint64) error {
	if n > a.sending-a.base {
		return fmt.Errorf("%s acknowledgement: %d bytes read, but only %d sent: %w", o.kind, n, a.sending-a.base, ErrInvalidArgument)
	}
	o.buf.discard(a.base + n)
	o.changed.Broadcast()
	return nil
}

// fail stops a after its stream broke. What it had not delivered stays in
// buf for the next attachment.
func (o *output) fail(a *attachment, err error) {
	o.mu.Lock()
	first := o.att == a && !a.failed
	a.failed = true
	o.changed.Broadcast()
	o.mu.Unlock()
	if first {
		klog.V(2).InfoS("Output stream broken; the output is kept for the next host",
			"processID", o.processID, "stream", o.kind, "err", err)
	}
	a.st.close()
}

// stopped notes the end of the sender or the acknowledgement reader of a.
// When both have ended, a is detached and its stream closed.
func (o *output) stopped(a *attachment) {
	o.mu.Lock()
	a.running--
	last := a.running == 0
	if last && o.att == a {
		o.att = nil
		o.changed.Broadcast()
	}
	o.mu.Unlock()
	if last {
		a.st.close()
	}
}

// waitCopied waits until the output ended and is all written to the
// attached stream or, with none attached, kept in buf. Kept output counts
// as copied: otherwise a process whose host went away could never be
// waited for.
func (o *output) waitCopied() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for !o.ended || (o.att != nil && !o.att.flushed) {
		o.changed.Wait()
	}
}

// close drops the output and closes the attached stream: the process was
// removed.
func (o *output) close() {
	o.mu.Lock()
	o.closed = true
	a := o.att
	o.att = nil
	o.buf = outputBuffer{}
	o.changed.Broadcast()
	o.mu.Unlock()
	if a != nil {
		a.st.close()
	}
}

// outputBuffer is the output kept for the host, addressed by offsets in the
// whole output: start is the offset of data[0].
type outputBuffer struct {
	data  []byte
	start uint64
}

func (b *outputBuffer) len() int    { return len(b.data) }
func (b *outputBuffer) end() uint64 { return b.start + uint64(len(b.data)) }

// write appends p, then drops the oldest bytes beyond limit, and returns how
// many it dropped.
func (b *outputBuffer) write(p []byte, limit int) int {
	b.data = append(b.data, p...)
	over := len(b.data) - limit
	if over <= 0 {
		return 0
	}
	b.discard(b.start + uint64(over))
	return over
}

// discard drops the bytes before offset upTo.
func (b *outputBuffer) discard(upTo uint64) {
	if upTo <= b.start {
		return
	}
	n := min(upTo-b.start, uint64(len(b.data)))
	b.data = b.data[n:]
	b.start += n
	if len(b.data) == 0 {
		b.data = nil // let the memory go while nothing is kept
	}
}

// read copies into p the bytes from offset from on, and says how many.
func (b *outputBuffer) read(from uint64, p []byte) int {
	from = max(from, b.start)
	return copy(p, b.data[from-b.start:])
}
