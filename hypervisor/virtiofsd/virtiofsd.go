// Package virtiofsd runs the virtio-fs daemon that serves one pod's shared
// directory to its VM over a vhost-user socket. The daemon runs as root, so
// that it can serve files of any owner, confined by its own namespace
// sandbox (pivot_root into the shared directory, private mount, PID and
// network namespaces) and seccomp filter; it runs in its own session, so
// that a podvisor restart leaves it serving.
package virtiofsd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/vmmproc"
)

// DefaultBinary is Debian's C virtiofsd (package qemu-system-common).
const DefaultBinary = "/usr/lib/qemu/virtiofsd"

// CacheMode is virtiofsd's -o cache= value.
type CacheMode string

const (
	// CacheAuto caches metadata and data for about a second: host-side
	// changes (kubelet updating a configMap volume) show up in the guest
	// soon, without a round trip to the host on every stat.
	CacheAuto CacheMode = "auto"
	// CacheNone makes every access a round trip: fully coherent, slow.
	CacheNone CacheMode = "none"
	// CacheAlways never revalidates: host-side changes may stay unseen.
	CacheAlways CacheMode = "always"
)

// Config describes one virtiofsd. Zero fields take defaults.
type Config struct {
	// ID names the VM this daemon serves, in logs.
	ID string
	// Binary is the virtiofsd executable; DefaultBinary when empty.
	Binary string
	// SharedDir is the directory served, as the guest's filesystem root.
	SharedDir string
	// SocketPath is where the vhost-user socket is created. Its directory
	// must exist.
	SocketPath string
	// SocketGroup, when non-zero, is the group allowed to connect (socket
	// mode 0660): that of the unprivileged VMM. Zero keeps it root-only.
	SocketGroup uint32
	// LogPath receives virtiofsd's stderr; empty discards it.
	LogPath string
	// Cache is the cache mode; CacheAuto when empty.
	Cache CacheMode
	// ThreadPoolSize is virtiofsd's worker pool; 0 handles requests on the
	// virtqueue thread, the cheapest in memory and fine for one pod.
	ThreadPoolSize int
	// Xattr passes extended attributes through. Off by default: with it a
	// guest could set trusted.* and security.* attributes on host files.
	Xattr bool
}

func (c *Config) withDefaults() {
	if c.Binary == "" {
		c.Binary = DefaultBinary
	}
	if c.Cache == "" {
		c.Cache = CacheAuto
	}
}

// Validate checks c; it has no side effects.
func (c *Config) Validate() error {
	switch {
	case !filepath.IsAbs(c.SharedDir):
		return fmt.Errorf("%w: virtiofsd: shared dir %q is not an absolute path", hypervisor.ErrInvalidConfig, c.SharedDir)
	case !filepath.IsAbs(c.SocketPath) || len(c.SocketPath) > 107:
		return fmt.Errorf("%w: virtiofsd: socket path %q must be absolute and at most 107 bytes", hypervisor.ErrInvalidConfig, c.SocketPath)
	case c.ThreadPoolSize < 0 || c.ThreadPoolSize > 64:
		return fmt.Errorf("%w: virtiofsd: thread pool size %d out of range 0-64", hypervisor.ErrInvalidConfig, c.ThreadPoolSize)
	}
	switch c.Cache {
	case "", CacheAuto, CacheNone, CacheAlways:
	default:
		return fmt.Errorf("%w: virtiofsd: cache mode %q", hypervisor.ErrInvalidConfig, c.Cache)
	}
	fi, err := os.Stat(c.SharedDir)
	if err != nil {
		return fmt.Errorf("%w: virtiofsd: %w", hypervisor.ErrInvalidConfig, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: virtiofsd: %s is not a directory", hypervisor.ErrInvalidConfig, c.SharedDir)
	}
	return nil
}

// args is virtiofsd's command line; the listening socket is fd 3.
func (c *Config) args() []string {
	a := []string{
		"--fd=3",
		"-o", "source=" + c.SharedDir,
		"-o", "sandbox=namespace",
		"-o", "cache=" + string(c.Cache),
		// Volumes are bind mounts inside the shared dir: announcing them
		// gives the guest one submount each, so inode numbers of different
		// host filesystems cannot collide.
		"-o", "announce_submounts",
		"--thread-pool-size=" + strconv.Itoa(c.ThreadPoolSize),
	}
	if c.Xattr {
		a = append(a, "-o", "xattr")
	}
	return a
}

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

// Done is closed once virtiofsd has exited, which it does by itself when
// its VMM disconnects.
func (d *Daemon) Done() <-chan struct{} { return d.proc.Done() }

// Err is why virtiofsd exited: nil while it runs, after a clean exit (its
// VMM went away) or for an attached process whose status is unknowable.
func (d *Daemon) Err() error {
	select {
	case <-d.proc.Done():
	default:
		return nil
	}
	if err := d.proc.Err(); err != nil {
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

// listen creates the vhost-user socket, accessible to root and, when gid is
// non-zero, to that group. Permissions are set before listen(2), so no one
// else can connect in between.
func listen(path string, gid uint32) (*os.File, error) {
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), path)
	if err := bindListen(fd, path, gid); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func bindListen(fd int, path string, gid uint32) error {
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return fmt.Errorf("bind %s: %w", path, err)
	}
	mode := uint32(0o600)
	if gid != 0 {
		mode = 0o660
		if err := unix.Lchown(path, 0, int(gid)); err != nil {
			_ = os.Remove(path)
			return fmt.Errorf("chown %s: %w", path, err)
		}
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, path, mode, 0); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	// One pending connection is all a single-client daemon needs.
	if err := unix.Listen(fd, 1); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("listen %s: %w", path, err)
	}
	return nil
}

// removeStaleSocket removes a socket a crashed run left at path. It does not
// probe it by connecting: a live virtiofsd would take the probe for its one
// VMM and exit when it closed. One virtiofsd per socket path is the
// caller's contract.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	return os.Remove(path)
}

func removeSocket(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
