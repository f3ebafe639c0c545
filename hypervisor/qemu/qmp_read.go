package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/hypervisor"
)

// readLoop is the connection's only reader: it hands replies to the
// commands waiting for them and events to whoever watches, until the
// connection fails.
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
