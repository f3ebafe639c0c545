package cri

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/podvisor/podvisor/cri/errdefs"
)

// Lifecycle steps that take seconds in a pod VM (RunPodSandbox boots a VM:
// ~7 s under TCG; CreateContainer prepares a rootfs and runs runc create
// in the guest; StartContainer ~0.5-1 s) run as operations owned by the
// Service rather than by the request that asked for them. The request
// waits for its operation or for its own context, whichever ends first: a
// client that gives up (crictl's default timeout is 2 s, 4 s for
// RunPodSandbox) neither aborts a boot halfway nor leaves a container
// whose state disagrees with the guest. A retry of the same request while
// the operation runs joins it instead of starting a second one.

// Bounds of the operations. The boot bound adds room for CNI to the VM
// backend's own boot timeout; the others match kubelet's default
// runtime-request-timeout, which bounds kubelet's own wait.
const (
	sandboxSetupMargin = time.Minute
	createTimeout      = 2 * time.Minute
	startTimeout       = 2 * time.Minute
)

// op is one operation in flight (or finished).
type op struct {
	id   string // the sandbox or container the operation is about
	done chan struct{}
	err  error // set before done is closed
}

func newOp(id string) *op { return &op{id: id, done: make(chan struct{})} }

// finishedOp is an operation that needs no work, e.g. a RunPodSandbox
// retried after its sandbox is ready.
func finishedOp(id string) *op {
	o := newOp(id)
	close(o.done)
	return o
}

// wait returns the operation's error, or ctx's if ctx ends first; the
// operation then goes on.
func (o *op) wait(ctx context.Context) error {
	select {
	case <-o.done:
		return o.err
	default:
	}
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// opTable holds the operations in flight by key ("sandbox/<name>",
// "container/<name>", "start/<id>").
type opTable struct {
	mu     sync.Mutex
	ops    map[string]*op
	closed bool
	wg     sync.WaitGroup
}

// lookupLocked returns the operation in flight under key, or an error if
// the service is closing and takes no new operations; hold t.mu.
func (t *opTable) lookupLocked(key string) (*op, error) {
	if t.closed {
		return nil, fmt.Errorf("the service is shutting down: %w", errdefs.ErrUnavailable)
	}
	return t.ops[key], nil
}

// launchLocked registers o under key and runs fn for it in a goroutine on
// a context that keeps ctx's values (request ID) but not its deadline or
// cancellation, is bounded by timeout and is cancelled when the service
// closes. Hold s.ops.mu, after a lookupLocked that found the table open.
func (s *Service) launchLocked(ctx context.Context, key string, o *op, timeout time.Duration, fn func(context.Context) error) {
	t := &s.ops
	if t.ops == nil {
		t.ops = map[string]*op{}
	}
	t.ops[key] = o
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		stop := context.AfterFunc(s.svcCtx, cancel)
		err := fn(octx)
		stop()
		cancel()
		t.mu.Lock()
		delete(t.ops, key)
		t.mu.Unlock()
		o.err = err
		close(o.done)
	}()
}

// closeAndWait refuses new operations and waits for the running ones and
// their cleanup; the caller cancels the service context first, which
// cancels them.
func (t *opTable) closeAndWait() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.wg.Wait()
}
