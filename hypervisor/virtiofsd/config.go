package virtiofsd

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/podvisor/podvisor/hypervisor"
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
