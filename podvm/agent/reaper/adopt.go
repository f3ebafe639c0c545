package reaper

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
)

// Errors of Window.Adopt.
var (
	// ErrNotChild means the PID is neither a child of this process nor a
	// process that exited (and was reaped) while the window was open.
	ErrNotChild = errors.New("not a child of the reaper's process")
	// ErrRegistered means the PID already has a waiter.
	ErrRegistered = errors.New("process already registered")
	// ErrWindowClosed means Adopt was called on a closed window.
	ErrWindowClosed = errors.New("adoption window closed")
)

// Window is an adoption window: see the package documentation. Open it
// before starting the program that will leave an orphan behind, adopt the
// orphan's PID, then Close it.
type Window struct {
	r         *Reaper
	mu        sync.Mutex
	closed    bool
	closeOnce sync.Once
}

// OpenWindow starts holding back the exit statuses of unregistered PIDs.
func (r *Reaper) OpenWindow() *Window {
	r.mu.Lock()
	r.windows++
	r.mu.Unlock()
	return &Window{r: r}
}

// Close ends the window. When no window is left open, the held statuses are
// dropped: they belonged to orphans nobody adopted.
func (w *Window) Close() {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		r := w.r
		r.mu.Lock()
		r.windows--
		if r.windows == 0 {
			clear(r.held)
		}
		r.mu.Unlock()
	})
}

// Adopt registers pid, a process this process did not fork itself, so that
// its exit is delivered on the returned channel (buffered, receives once).
// If pid exited while a window was open, its held status is delivered at
// once. Otherwise pid must be a child of this process (re-parented to it);
// reaping is held off while that is checked, so the child cannot be reaped
// between the check and its registration.
//
// PIDs are recycled, so a held status is only trusted because windows are
// short: a PID reused and exited twice within one window would be mistaken.
func (w *Window) Adopt(pid int) (<-chan Exit, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("adopt pid %d: %w", pid, ErrNotChild)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, ErrWindowClosed
	}
	r := w.r
	r.forkMu.RLock()
	defer r.forkMu.RUnlock()

	ch := make(chan Exit, 1)
	r.mu.Lock()
	if _, ok := r.waiters[pid]; ok {
		r.mu.Unlock()
		return nil, fmt.Errorf("adopt pid %d: %w", pid, ErrRegistered)
	}
	if e, ok := r.held[pid]; ok {
		delete(r.held, pid)
		r.mu.Unlock()
		ch <- e
		return ch, nil
	}
	r.mu.Unlock()

	// Not reaped yet, and it cannot be while forkMu is held: if it is our
	// child now, running or a zombie, its exit will reach the waiter.
	ppid, err := parentPID(pid)
	if err != nil {
		return nil, fmt.Errorf("adopt pid %d: %w: %w", pid, ErrNotChild, err)
	}
	if ppid != os.Getpid() {
		return nil, fmt.Errorf("adopt pid %d: parent is %d: %w", pid, ppid, ErrNotChild)
	}
	r.mu.Lock()
	r.waiters[pid] = ch
	r.mu.Unlock()
	return ch, nil
}

// parentPID reads the parent of pid from /proc/<pid>/stat.
func parentPID(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may contain anything, including
	// ") "; the fields after the last ')' are "state ppid ...".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return strconv.Atoi(string(f[1]))
}
