// Package undo is the rollback stack of multi-step operations (VM launch,
// pod VM boot): each step that makes a side effect pushes its inverse, and a
// failure runs them in reverse order.
package undo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/klog/v2"
)

// Stack holds labelled undo steps. The zero value is ready to use.
type Stack struct {
	steps []step
}

type step struct {
	name string
	fn   func(context.Context) error
}

// Push records the inverse of a side effect that just happened.
func (s *Stack) Push(name string, fn func(context.Context) error) {
	s.steps = append(s.steps, step{name, fn})
}

// Run executes the steps last-first and forgets them. It runs on a fresh
// context bounded by timeout: the context of the failed operation may be
// the very thing that failed, and cleanup must still happen. Every failing
// step is logged with logKV and reported.
func (s *Stack) Run(timeout time.Duration, logKV ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	for i := len(s.steps) - 1; i >= 0; i-- {
		st := s.steps[i]
		if err := st.fn(ctx); err != nil {
			klog.ErrorS(err, "Rollback step failed", append([]any{"step", st.name}, logKV...)...)
			errs = append(errs, fmt.Errorf("undo %s: %w", st.name, err))
		}
	}
	s.steps = nil
	return errors.Join(errs...)
}
