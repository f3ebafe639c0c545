package qemu

import "k8s.io/klog/v2"

// undoStack holds labelled cleanup steps, run last-in first-out when a
// launch fails. Steps take no context: killing QEMU and removing files must
// happen even when the caller's context is what failed.
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
