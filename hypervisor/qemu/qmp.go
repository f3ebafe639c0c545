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
	return newQMPClient(ctx, c.(*net.UnixConn), vmID)
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
