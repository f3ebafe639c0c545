package cloudhypervisor

import (
	"errors"
	"os"

	"k8s.io/klog/v2"
)

// undoStack holds labelled cleanup steps, run last-in first-out when a launch
// fails. Steps take no context: they kill processes and remove files, which
// must happen even when the caller's context is what failed.
type undoStack struct {
	vmID  string
	steps []undoStep
}

type undoStep struct {
	name string
	fn   func() error
}

func (u *undoStack) push(name string, fn func() error) {
	u.steps = append(u.steps, undoStep{name, fn})
}

func (u *undoStack) run() {
	for i := len(u.steps) - 1; i >= 0; i-- {
		s := u.steps[i]
		if err := s.fn(); err != nil {
			klog.ErrorS(err, "Launch cleanup step failed", "vm", u.vmID, "step", s.name)
		}
	}
	u.steps = nil
}

// removeFiles removes paths, ignoring those already gone.
func removeFiles(paths ...string) error {
	var errs []error
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
