// Package reaper owns the agent's child processes' exit statuses. As PID 1 of
// the guest the agent inherits every orphan and must reap it, which means one
// wait4(-1) loop for the whole process; anything that starts a child in the
// agent goes through a Reaper so that its exit status is routed back to it
// instead of being swallowed by that loop.
//
// Because the loop reaps every child, code in the agent must not use
// exec.Cmd.Wait, os.Process.Wait or wait4 on its own: start children with
// Reaper.Start (or StartCmd) and take the exit from the returned channel.
//
// Some children are not forked by the agent: a container's init process and
// its exec'd processes are forked by runc and re-parented to the agent when
// the intermediate runc processes exit, and they may exit (and be reaped)
// before the agent has even read their PID from runc's pid file. For them,
// open an adoption Window before starting runc: while any window is open the
// reaper holds back the exit statuses of PIDs nobody registered, and
// Window.Adopt registers a PID after the fact, handing over a held status or
// waiting for the child's exit.
package reaper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// ErrNotRunning is returned by Kill for a PID that was not started through the
// Reaper or whose exit has already been collected.
var ErrNotRunning = errors.New("process is not running")

// Exit is how a child ended.
type Exit struct {
	Status syscall.WaitStatus
	// Time is when the reaper collected the status.
	Time time.Time
}

// ExitCode is the shell-style exit code: the exit status, or 128+signal when
// the child was killed by a signal.
func (e Exit) ExitCode() int {
	if e.Status.Signaled() {
		return 128 + int(e.Status.Signal())
	}
	return e.Status.ExitStatus()
}

// Signal is the signal that killed the child, 0 if it exited normally.
func (e Exit) Signal() syscall.Signal {
	if e.Status.Signaled() {
		return e.Status.Signal()
	}
	return 0
}

// Reaper collects the exit status of every child of the process and hands
// each one to whoever started that child. Create one per process.
type Reaper struct {
	sigs chan os.Signal

	// forkMu is held for reading while a child is started and registered, and
	// while a registered child is signalled; the reap loop holds it for
	// writing. So a child cannot be reaped between its fork and its
	// registration, and a PID cannot be reaped (and recycled) while Kill is
	// using it.
	forkMu sync.RWMutex

	mu      sync.Mutex // guards waiters, windows and held
	waiters map[int]chan Exit
	// windows counts the open adoption windows; while it is non-zero, exits
	// of unregistered PIDs are kept in held (at most maxHeld of them) for
	// Window.Adopt, and when it drops to zero held is emptied.
	windows int
	held    map[int]Exit
}

// maxHeld bounds the exit statuses held for adoption. Only processes that
// exit while a window is open and were never registered end up there:
// runc's own intermediate processes and orphans of container processes.
const maxHeld = 4096

// New subscribes to SIGCHLD and, when the process is not PID 1, marks it a
// child subreaper so that orphans of its children are re-parented to it (and
// reaped by it) rather than to the real init. Call Run to start reaping.
func New() (*Reaper, error) {
	if os.Getpid() != 1 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return nil, fmt.Errorf("become child subreaper: %w", err)
		}
	}
	r := &Reaper{
		// One slot is enough: a pending signal means "reap again", and one
		// pass collects every child that has exited so far.
		sigs:    make(chan os.Signal, 1),
		waiters: make(map[int]chan Exit),
		held:    make(map[int]Exit),
	}
	signal.Notify(r.sigs, unix.SIGCHLD)
	return r, nil
}

// Run reaps children until ctx ends.
func (r *Reaper) Run(ctx context.Context) {
	defer signal.Stop(r.sigs)
	// Children may have exited before the subscription.
	r.reap()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.sigs:
			r.reap()
		}
	}
}

// reap collects every exited child and routes each status to its waiter.
func (r *Reaper) reap() {
	r.forkMu.Lock()
	defer r.forkMu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			// ECHILD: no children at all; 0: none has exited yet.
			return
		}
		exit := Exit{Status: syscall.WaitStatus(ws), Time: time.Now()}
		r.mu.Lock()
		ch, ok := r.waiters[pid]
		delete(r.waiters, pid)
		hold := !ok && r.windows > 0 && len(r.held) < maxHeld
		if hold {
			r.held[pid] = exit
		}
		r.mu.Unlock()
		if !ok {
			klog.V(4).InfoS("Reaped orphan", "pid", pid, "exitCode", exit.ExitCode(), "held", hold)
			continue
		}
		ch <- exit // buffered: never blocks
	}
}

// Start runs start, which must fork exactly one child and return its PID,
// and registers that PID so its exit is delivered on the returned channel
// (buffered, receives once).
func (r *Reaper) Start(start func() (int, error)) (int, <-chan Exit, error) {
	r.forkMu.RLock()
	defer r.forkMu.RUnlock()
	pid, err := start()
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan Exit, 1)
	r.mu.Lock()
	r.waiters[pid] = ch
	r.mu.Unlock()
	return pid, ch, nil
}

// StartCmd starts cmd and returns the channel its exit is delivered on. Do
// not call cmd.Wait: the reaper collects the status, so Wait would fail, and
// the goroutines os/exec uses to copy non-*os.File stdio would not be waited
// for. Give the command *os.File stdio (or none).
func (r *Reaper) StartCmd(cmd *exec.Cmd) (<-chan Exit, error) {
	_, ch, err := r.Start(func() (int, error) {
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		return cmd.Process.Pid, nil
	})
	return ch, err
}

// Kill sends sig to pid if pid was started through r and has not been
// reaped yet; otherwise it returns ErrNotRunning. The PID cannot be recycled
// while Kill runs, so the signal never reaches an unrelated process.
func (r *Reaper) Kill(pid int, sig syscall.Signal) error {
	r.forkMu.RLock()
	defer r.forkMu.RUnlock()
	r.mu.Lock()
	_, ok := r.waiters[pid]
	r.mu.Unlock()
	if !ok {
		return ErrNotRunning
	}
	// A zombie that has not been reaped yet accepts the signal and ignores it.
	return unix.Kill(pid, sig)
}
