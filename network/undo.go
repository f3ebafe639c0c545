package network

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/klog/v2"
)

// cleanupTimeout bounds rollback and teardown work done on a context
// detached from the request: a kubelet that gave up must not leave a
// half-built pod network behind.
const cleanupTimeout = 2 * time.Minute

// undoStack holds labelled rollback steps, run in reverse order.
type undoStack []undoStep

type undoStep struct {
	name string
	fn   func(context.Context) error
}

func (u *undoStack) push(name string, fn func(context.Context) error) {
	*u = append(*u, undoStep{name, fn})
}

// run executes every step even when some fail, on a context that keeps
// ctx's values but not its cancellation, and returns the failures joined.
func (u undoStack) run(ctx context.Context, podID string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var errs []error
	for i := len(u) - 1; i >= 0; i-- {
		if err := u[i].fn(ctx); err != nil {
			klog.ErrorS(err, "Pod network rollback step failed", "podSandboxID", podID, "step", u[i].name)
			errs = append(errs, fmt.Errorf("undo %s: %w", u[i].name, err))
		}
	}
	return errors.Join(errs...)
}
