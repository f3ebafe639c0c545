package qemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/hypervisor"
)

// maxQMPMessage caps one QMP message. QEMU runs next to a guest that may have
// taken it over, so what it sends is bounded like any other guest input; the
// replies this driver asks for are a few hundred bytes.
const maxQMPMessage = 1 << 20

// qmpError is an error reply from QEMU.
type qmpError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *qmpError) Error() string { return e.Class + ": " + e.Desc }

// isQMPClass reports whether err is a QMP error reply of the given class
// (e.g. "DeviceNotFound").
func isQMPClass(err error, class string) bool {
	var qe *qmpError
	return errors.As(err, &qe) && qe.Class == class
}

// qmpMessage is any message QEMU sends: the greeting, a reply or an event.
type qmpMessage struct {
	Greeting json.RawMessage `json:"QMP"`
	Event    string          `json:"event"`
	Data     json.RawMessage `json:"data"`
	ID       json.RawMessage `json:"id"`
	Return   json.RawMessage `json:"return"`
	Error    *qmpError       `json:"error"`
}

type qmpReply struct {
	ret json.RawMessage
	err error
}

// eventWatch receives the first event of one name whose data match.
type eventWatch struct {
	name  string
	match func(data json.RawMessage) bool
	ch    chan json.RawMessage
}

// qmpClient speaks QMP over one unix socket connection. Commands carry an
// id and are answered through it, so concurrent callers never see each
// other's replies; events go to whoever watches for them. Safe for
// concurrent use.
type qmpClient struct {
	conn *net.UnixConn
	vmID string

	wmu sync.Mutex // one message on the wire at a time
	// fdMu holds a command that carries a file descriptor until QEMU has
	// answered it: QEMU keeps only the fds of its latest read, so a second
	// fd arriving before the first was consumed would replace it.
	fdMu sync.Mutex

	mu       sync.Mutex
	nextID   uint64
	pending  map[string]chan qmpReply
	watches  map[*eventWatch]struct{}
	shutdown string // reason of the last SHUTDOWN event

	closed   chan struct{}
	closeErr error // set before closed is closed
}

// dialQMP connects to a QMP socket and negotiates capabilities.
func dialQMP(ctx context.Context, path, vmID string) (*qmpClient, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connect QMP: %w", err)
	}
	q, err := newQMPClient(ctx, c.(*net.UnixConn), vmID)
	if err != nil {
		return nil, err
	}
	return q, nil
}

// newQMPClient reads the greeting on conn, starts the reader and leaves
// capabilities negotiation mode. It closes conn when it fails.
func newQMPClient(ctx context.Context, conn *net.UnixConn, vmID string) (*qmpClient, error) {
	q := &qmpClient{
		conn:    conn,
		vmID:    vmID,
		pending: make(map[string]chan qmpReply),
		watches: make(map[*eventWatch]struct{}),
		closed:  make(chan struct{}),
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	if err := q.readGreeting(ctx, r); err != nil {
		conn.Close()
		return nil, err
	}
	go q.readLoop(r)
	if err := q.execute(ctx, "qmp_capabilities", nil, nil); err != nil {
		q.close()
		return nil, err
	}
	return q, nil
}

func (q *qmpClient) readGreeting(ctx context.Context, r *bufio.Reader) error {
	stop := context.AfterFunc(ctx, func() { _ = q.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	line, err := readQMPLine(r)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("read QMP greeting: %w", err)
	}
	if !stop() {
		return fmt.Errorf("read QMP greeting: %w", ctx.Err())
	}
	var m qmpMessage
	if err := json.Unmarshal(line, &m); err != nil || m.Greeting == nil {
		return fmt.Errorf("read QMP greeting: unexpected message %.200q", line)
	}
	return q.conn.SetReadDeadline(time.Time{})
}

// readQMPLine returns the next non-empty line, refusing oversized ones.
func readQMPLine(r *bufio.Reader) ([]byte, error) {
	for {
		var line []byte
		for {
			chunk, err := r.ReadSlice('\n')
			if len(line)+len(chunk) > maxQMPMessage {
				return nil, fmt.Errorf("QMP message longer than %d bytes", maxQMPMessage)
			}
			line = append(line, chunk...)
			if err == nil {
				break
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				return nil, err
			}
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			return line, nil
		}
	}
}

func (q *qmpClient) readLoop(r *bufio.Reader) {
	for {
		line, err := readQMPLine(r)
		if err != nil {
			q.fail(fmt.Errorf("QMP connection: %v: %w", err, hypervisor.ErrNotRunning))
			return
		}
		var m qmpMessage
		if err := json.Unmarshal(line, &m); err != nil {
			q.fail(fmt.Errorf("QMP connection: malformed message: %v: %w", err, hypervisor.ErrNotRunning))
			return
		}
		klog.V(4).InfoS("QMP received", "vm", q.vmID, "message", string(line))
		if m.Event != "" {
			q.dispatchEvent(m.Event, m.Data)
			continue
		}
		q.dispatchReply(&m)
	}
}

func (q *qmpClient) dispatchReply(m *qmpMessage) {
	var id string
	if err := json.Unmarshal(m.ID, &id); err != nil {
		// Only a command QEMU could not parse is answered without our id;
		// every command this client sends is well-formed.
		klog.InfoS("Ignoring QMP reply without id", "vm", q.vmID, "error", m.Error)
		return
	}
	q.mu.Lock()
	ch := q.pending[id]
	delete(q.pending, id)
	q.mu.Unlock()
	if ch == nil {
		return // its caller gave up
	}
	if m.Error != nil {
		ch <- qmpReply{err: m.Error}
		return
	}
	ch <- qmpReply{ret: m.Return}
}

func (q *qmpClient) dispatchEvent(name string, data json.RawMessage) {
	if name == "SHUTDOWN" {
		var d struct {
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(data, &d)
		klog.InfoS("Guest shut down", "vm", q.vmID, "reason", d.Reason)
		q.mu.Lock()
		q.shutdown = d.Reason
		q.mu.Unlock()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for w := range q.watches {
		if w.name == name && (w.match == nil || w.match(data)) {
			select {
			case w.ch <- data:
			default:
			}
		}
	}
}

// fail records why the connection ended, wakes every waiter and closes the
// socket. The first reason wins.
func (q *qmpClient) fail(err error) {
	q.mu.Lock()
	select {
	case <-q.closed:
		q.mu.Unlock()
		return
	default:
	}
	q.closeErr = err
	close(q.closed)
	q.mu.Unlock()
	q.conn.Close()
}

// close ends the connection; later commands fail with ErrNotRunning.
func (q *qmpClient) close() {
	q.fail(fmt.Errorf("QMP connection closed: %w", hypervisor.ErrNotRunning))
}

// shutdownReason is the reason of the last SHUTDOWN event, if any.
func (q *qmpClient) shutdownReason() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.shutdown
}

// watch starts collecting the first event called name whose data match
// (nil matches all). Call it before the command that triggers the event,
// and unwatch when done.
func (q *qmpClient) watch(name string, match func(json.RawMessage) bool) *eventWatch {
	w := &eventWatch{name: name, match: match, ch: make(chan json.RawMessage, 1)}
	q.mu.Lock()
	q.watches[w] = struct{}{}
	q.mu.Unlock()
	return w
}

func (q *qmpClient) unwatch(w *eventWatch) {
	q.mu.Lock()
	delete(q.watches, w)
	q.mu.Unlock()
}

// waitEvent waits for w's event, ctx, or the end of the connection.
func (q *qmpClient) waitEvent(ctx context.Context, w *eventWatch) (json.RawMessage, error) {
	select {
	case d := <-w.ch:
		return d, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for QMP event %s: %w", w.name, ctx.Err())
	case <-q.closed:
		return nil, fmt.Errorf("wait for QMP event %s: %w", w.name, q.closeErr)
	}
}

// execute runs one command; when out is non-nil the reply's "return" value
// is decoded into it.
func (q *qmpClient) execute(ctx context.Context, cmd string, args, out any) error {
	return q.executeFile(ctx, cmd, args, nil, out)
}

// executeFile runs one command with f's descriptor attached (SCM_RIGHTS),
// as getfd and add-fd expect. f stays open; QEMU receives its own copy.
func (q *qmpClient) executeFile(ctx context.Context, cmd string, args any, f *os.File, out any) error {
	if f != nil {
		q.fdMu.Lock()
		defer q.fdMu.Unlock()
	}
	q.mu.Lock()
	select {
	case <-q.closed:
		q.mu.Unlock()
		return fmt.Errorf("QMP %s: %w", cmd, q.closeErr)
	default:
	}
	q.nextID++
	id := strconv.FormatUint(q.nextID, 10)
	ch := make(chan qmpReply, 1)
	q.pending[id] = ch
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		delete(q.pending, id)
		q.mu.Unlock()
	}()

	msg, err := json.Marshal(struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        string `json:"id"`
	}{cmd, args, id})
	if err != nil {
		return fmt.Errorf("QMP %s: encode: %w", cmd, err)
	}
	klog.V(4).InfoS("QMP send", "vm", q.vmID, "message", string(msg))
	if err := q.write(ctx, append(msg, '\n'), f); err != nil {
		return fmt.Errorf("QMP %s: %w", cmd, err)
	}

	var r qmpReply
	select {
	case r = <-ch:
	case <-ctx.Done():
		return fmt.Errorf("QMP %s: %w", cmd, ctx.Err())
	case <-q.closed:
		select {
		case r = <-ch: // answered just before the connection ended
		default:
			return fmt.Errorf("QMP %s: %w", cmd, q.closeErr)
		}
	}
	if r.err != nil {
		return fmt.Errorf("QMP %s: %w", cmd, r.err)
	}
	if out != nil {
		if err := json.Unmarshal(r.ret, out); err != nil {
			return fmt.Errorf("QMP %s: decode reply: %w", cmd, err)
		}
	}
	return nil
}

func (q *qmpClient) write(ctx context.Context, msg []byte, f *os.File) error {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	deadline, _ := ctx.Deadline()
	if err := q.conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	if f != nil {
		rc, err := f.SyscallConn()
		if err != nil {
			return err
		}
		var n int
		var werr error
		// Control rather than Fd: Fd would switch the caller's file to
		// blocking mode.
		if err := rc.Control(func(fd uintptr) {
			n, _, werr = q.conn.WriteMsgUnix(msg, unix.UnixRights(int(fd)), nil)
		}); err != nil {
			return err
		}
		if werr != nil {
			return werr
		}
		msg = msg[n:]
	}
	if len(msg) == 0 {
		return nil
	}
	_, err := q.conn.Write(msg)
	return err
}
