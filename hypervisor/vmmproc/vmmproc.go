// Package vmmproc starts and watches the host processes behind a VM (the VMM
// itself, virtiofsd): each in its own session so that a daemon restart does not
// take it down, optionally inside a network namespace and with dropped
// credentials, and identified by PID plus start time so that a recycled PID is
// never mistaken for it.
package vmmproc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Spec describes a process to start.
type Spec struct {
	Path string
	Args []string // without argv[0]
	Env  []string
	// ExtraFiles become fds 3, 4, … in the child.
	ExtraFiles []*os.File
	// NetNSPath, when set, is the network namespace the child starts in.
	NetNSPath string
	// UID/GID, when non-zero, are the child's credentials, with exactly
	// Groups as supplementary groups.
	UID, GID uint32
	Groups   []uint32
	// Log receives stdout and stderr; nil discards them.
	Log *os.File
}

// Process is a started child, or one found again by PID after a restart.
type Process struct {
	PID       int
	StartTime uint64

	cmd  *exec.Cmd // nil for a re-attached process
	done chan struct{}
	mu   sync.Mutex
	err  error

	releaseOnce sync.Once
	released    chan struct{} // closed by Release: stop polling
}

// Start launches spec in a new session, so that it outlives the daemon.
func Start(spec Spec) (*Process, error) {
	cmd := exec.Command(spec.Path, spec.Args...)
	// The child needs no working directory of the daemon's.
	cmd.Dir = "/"
	cmd.Env = spec.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.ExtraFiles = spec.ExtraFiles
	if spec.Log != nil {
		cmd.Stdout, cmd.Stderr = spec.Log, spec.Log
	}
	attr := &syscall.SysProcAttr{Setsid: true}
	if spec.UID != 0 || spec.GID != 0 {
		groups := append([]uint32{}, spec.Groups...)
		attr.Credential = &syscall.Credential{Uid: spec.UID, Gid: spec.GID, Groups: groups}
	}
	cmd.SysProcAttr = attr

	if err := startIn(spec.NetNSPath, cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Path, err)
	}
	p := &Process{PID: cmd.Process.Pid, cmd: cmd, done: make(chan struct{})}
	p.StartTime, _ = StartTime(p.PID)
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// startIn starts cmd with the calling OS thread switched into the network
// namespace at path: a forked child inherits the namespace of the thread that
// forked it.
func startIn(nsPath string, cmd *exec.Cmd) error {
	if nsPath == "" {
		return cmd.Start()
	}
	target, err := os.Open(nsPath)
	if err != nil {
		return fmt.Errorf("open netns: %w", err)
	}
	defer target.Close()

	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own netns: %w", err)
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", nsPath, err)
	}
	startErr := cmd.Start()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the wrong namespace: keep it locked so
		// that the runtime discards it when this goroutine ends.
		return errors.Join(startErr, fmt.Errorf("leave netns: %w", err))
	}
	runtime.UnlockOSThread()
	return startErr
}

// Attach finds a process started by an earlier daemon. It fails when the PID
// is gone or now belongs to a different process.
func Attach(pid int, startTime uint64) (*Process, error) {
	st, err := StartTime(pid)
	if err != nil || st != startTime {
		return nil, fmt.Errorf("process %d: %w", pid, os.ErrProcessDone)
	}
	p := &Process{PID: pid, StartTime: st, done: make(chan struct{}), released: make(chan struct{})}
	go p.poll()
	return p, nil
}

// poll watches a process that is not our child (it was reparented when the
// daemon that started it exited), by PID and start time.
func (p *Process) poll() {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		st, err := StartTime(p.PID)
		if err != nil || st != p.StartTime || isZombie(p.PID) {
			close(p.done)
			return
		}
		select {
		case <-t.C:
		case <-p.released:
			close(p.done)
			return
		}
	}
}

// Release stops watching a re-attached process (which keeps running) and
// closes Done; the handle must not be used afterwards. For a child this
// process started it does nothing: the child is reaped when it exits.
func (p *Process) Release() {
	if p.released == nil {
		return
	}
	p.releaseOnce.Do(func() { close(p.released) })
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the exit error of a child we started (nil on a clean exit or for a
// re-attached process).
func (p *Process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Signal sends sig unless the process has already exited.
func (p *Process) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if p.cmd != nil {
		if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return err
		}
		return nil
	}
	if st, err := StartTime(p.PID); err != nil || st != p.StartTime {
		return nil
	}
	if err := unix.Kill(p.PID, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	return nil
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.done
}

// StartTime reads field 22 of /proc/<pid>/stat (start time in clock ticks).
func StartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	// The command name (field 2) may hold spaces and parentheses: split after
	// its last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z'
}
