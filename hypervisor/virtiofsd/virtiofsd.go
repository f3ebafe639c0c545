// Package virtiofsd runs the virtio-fs daemon that serves one pod's shared
// directory to its VM over a vhost-user socket. The daemon runs as root, so
// that it can serve files of any owner, confined by its own namespace
// sandbox (pivot_root into the shared directory, private mount, PID and
// network namespaces) and seccomp filter; it runs in its own session, so
// that a podvisor restart leaves it serving.
package virtiofsd

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/vmmproc"
)

// State is what a later daemon needs to Attach.
type State struct {
	PID        int    `json:"pid"`
	StartTime  uint64 `json:"startTime"`
	SocketPath string `json:"socketPath"`
	ID         string `json:"id,omitempty"`
}

// Daemon is a running virtiofsd.
type Daemon struct {
	id     string
	socket string
	proc   *vmmproc.Process

	mu      sync.Mutex
	stopped bool // Stop was called: how it exited is no error
}

// Start validates cfg, creates the vhost-user socket and starts virtiofsd
// on it. The socket is bound and listening before virtiofsd runs (it gets
// it as --fd), so a VMM may connect as soon as Start returns. virtiofsd
// serves one VMM connection and exits when it closes.
func Start(ctx context.Context, cfg Config) (_ *Daemon, retErr error) {
	cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start virtiofsd: %w", err)
	}
	ln, err := listen(cfg.SocketPath, cfg.SocketGroup)
	if err != nil {
		return nil, fmt.Errorf("start virtiofsd: %w", err)
	}
	defer ln.Close() // virtiofsd holds its own copy
	defer func() {
		if retErr != nil {
			_ = removeSocket(cfg.SocketPath)
		}
	}()
	var log *os.File
	if cfg.LogPath != "" {
		log, err = os.OpenFile(cfg.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_NOFOLLOW, 0o640)
		if err != nil {
			return nil, fmt.Errorf("start virtiofsd: open log: %w", err)
		}
		defer log.Close()
	}
	proc, err := vmmproc.Start(vmmproc.Spec{
		Path:       cfg.Binary,
		Args:       cfg.args(),
		ExtraFiles: []*os.File{ln},
		Log:        log,
	})
	if err != nil {
		return nil, fmt.Errorf("start virtiofsd: %w", err)
	}
	klog.InfoS("virtiofsd started", "vm", cfg.ID, "pid", proc.PID, "sharedDir", cfg.SharedDir, "cache", cfg.Cache)
	return &Daemon{id: cfg.ID, socket: cfg.SocketPath, proc: proc}, nil
}

// Attach finds a virtiofsd started by an earlier daemon. It fails with
// hypervisor.ErrNotRunning when the process is gone.
func Attach(st State) (*Daemon, error) {
	proc, err := vmmproc.Attach(st.PID, st.StartTime)
	if err != nil {
		return nil, fmt.Errorf("attach virtiofsd: %v: %w", err, hypervisor.ErrNotRunning)
	}
	return &Daemon{id: st.ID, socket: st.SocketPath, proc: proc}, nil
}

// State is what a later daemon needs to Attach.
func (d *Daemon) State() State {
	return State{PID: d.proc.PID, StartTime: d.proc.StartTime, SocketPath: d.socket, ID: d.id}
}

// SocketPath is the vhost-user socket a VMM connects to.
func (d *Daemon) SocketPath() string { return d.socket }

// Release stops watching a re-attached virtiofsd, which keeps serving its
// VM; the handle must not be used afterwards.
func (d *Daemon) Release() { d.proc.Release() }

// Done is closed once virtiofsd has exited, which it does by itself when
// its VMM disconnects.
func (d *Daemon) Done() <-chan struct{} { return d.proc.Done() }

// Err is why virtiofsd exited: nil while it runs, after Stop, after a clean
// exit (its VMM went away) or for an attached process whose status is
// unknowable.
func (d *Daemon) Err() error {
	select {
	case <-d.proc.Done():
	default:
		return nil
	}
	d.mu.Lock()
	stopped := d.stopped
	d.mu.Unlock()
	if err := d.proc.Err(); err != nil && !stopped {
		return fmt.Errorf("virtiofsd exited: %w", err)
	}
	return nil
}

// stopGrace is how long virtiofsd gets to exit after SIGTERM.
const stopGrace = 5 * time.Second

// Stop ends virtiofsd: SIGTERM, then SIGKILL after stopGrace or when ctx
// ends. It removes the socket. Stopping one that already exited (normal
// once its VMM is gone) returns nil.
func (d *Daemon) Stop(ctx context.Context) error {
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	if err := d.proc.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop virtiofsd: %w", err)
	}
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-d.proc.Done():
	case <-t.C:
		klog.InfoS("virtiofsd ignored SIGTERM, killing it", "vm", d.id, "pid", d.proc.PID)
		d.proc.Kill()
	case <-ctx.Done():
		d.proc.Kill()
	}
	if err := removeSocket(d.socket); err != nil {
		return fmt.Errorf("stop virtiofsd: %w", err)
	}
	klog.V(2).InfoS("virtiofsd stopped", "vm", d.id, "pid", d.proc.PID)
	return nil
}
