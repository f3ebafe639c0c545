package podvm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/klog/v2"
)

// undoTimeout bounds the whole rollback of a failed boot. Rollback runs on a
// fresh context: the request that started the boot may be gone already.
const undoTimeout = 30 * time.Second

type undoStep struct {
	name string
	fn   func(context.Context) error
}

// undoStack collects the inverse of every side effect of a multi-step
// operation, to be run in reverse order when a later step fails.
type undoStack struct {
	steps []undoStep
}

func (u *undoStack) push(name string, fn func(context.Context) error) {
	u.steps = append(u.steps, undoStep{name, fn})
}

// run executes the collected steps last-first and reports every failure.
func (u *undoStack) run(vm string) error {
	ctx, cancel := context.WithTimeout(context.Background(), undoTimeout)
	defer cancel()
	var errs []error
	for i := len(u.steps) - 1; i >= 0; i-- {
		s := u.steps[i]
		if err := s.fn(ctx); err != nil {
			klog.ErrorS(err, "Rollback step failed", "vm", vm, "step", s.name)
			errs = append(errs, fmt.Errorf("undo %s: %w", s.name, err))
		}
	}
	u.steps = nil
	return errors.Join(errs...)
}
