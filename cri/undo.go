package cri

import (
	"context"
	"time"

	"k8s.io/klog/v2"
)

// cleanupTimeout bounds the undo steps of a failed creation. They run on a
// fresh context: a kubelet that gave up must not leave a half-built pod.
const cleanupTimeout = 2 * time.Minute

// undoStack holds labelled undo steps, run in reverse order.
type undoStack struct {
	steps []undoStep
}

type undoStep struct {
	name string
	fn   func(context.Context) error
}

func (u *undoStack) push(name string, fn func(context.Context) error) {
	u.steps = append(u.steps, undoStep{name, fn})
}

// run runs every step (most recent first) on a context detached from the
// request's cancellation, logging failures.
func (u *undoStack) run(ctx context.Context, keys ...any) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for i := len(u.steps) - 1; i >= 0; i-- {
		st := u.steps[i]
		if err := st.fn(ctx); err != nil {
			klog.ErrorS(err, "Cleanup step failed", append([]any{"step", st.name}, keys...)...)
		}
	}
	u.steps = nil
}
