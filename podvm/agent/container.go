package agent

import (
	"fmt"
	"path"
	"sort"
	"sync"
	"sync/atomic"
)

// Guest paths of the container runtime. The guest runs Debian's runc 1.1.5
// (package runc=1.1.5+ds1-1+deb12u1), packed into the initramfs with exactly
// the libraries it links (libseccomp2, libc6) and the dynamic loader, so the
// agent itself stays a static pure-Go binary: libcontainer inside the agent
// would need cgo and the nsexec re-exec of the agent binary, while runc
// brings the complete, audited OCI implementation (seccomp, capabilities,
// masked and read-only paths, no_new_privs, cgroup v2, namespaces) that CRI
// conformance exercises.
const (
	DefaultRunc       = "/usr/sbin/runc"
	DefaultRuncRoot   = "/run/runc"
	DefaultRunDir     = "/run/podvisor"
	DefaultCgroupRoot = "/sys/fs/cgroup"
	// CgroupParent is the cgroup (relative to the cgroup root) under which
	// every container's cgroup must lie; the agent enables the controllers
	// in it at boot.
	CgroupParent = "/podvisor"
)

// ContainerConfig says where the container runtime and its state live.
type ContainerConfig struct {
	// Runc is the runc binary; DefaultRunc when empty.
	Runc string
	// RuncRoot is runc's state directory (--root), on a tmpfs;
	// DefaultRuncRoot when empty.
	RuncRoot string
	// RunDir holds bundles/, console/ and net/, and is where the host's
	// shared directory is mounted (shared/); DefaultRunDir when empty.
	RunDir string
	// CgroupRoot is the cgroup v2 mount; DefaultCgroupRoot when empty.
	CgroupRoot string
}

func (c ContainerConfig) withDefaults() ContainerConfig {
	if c.Runc == "" {
		c.Runc = DefaultRunc
	}
	if c.RuncRoot == "" {
		c.RuncRoot = DefaultRuncRoot
	}
	if c.RunDir == "" {
		c.RunDir = DefaultRunDir
	}
	if c.CgroupRoot == "" {
		c.CgroupRoot = DefaultCgroupRoot
	}
	return c
}

// bundleDir holds one directory per container: config.json, runc's log,
// the pid file and exec'd processes' specs.
func (c ContainerConfig) bundleDir() string { return path.Join(c.RunDir, "bundles") }

// consoleDir holds the short-lived sockets runc sends pty masters over.
func (c ContainerConfig) consoleDir() string { return path.Join(c.RunDir, "console") }

// SharedDir is where the pod's shared directory (rootfs, volumes) is.
func (c ContainerConfig) SharedDir() string { return path.Join(c.RunDir, "shared") }

// NetDir holds resolv.conf, hostname and hosts for containers to
// bind-mount.
func (c ContainerConfig) NetDir() string { return path.Join(c.RunDir, "net") }

// container is one container the agent created. id, bundle and cgroup never
// change; init is set before the container is published.
type container struct {
	id     string
	bundle string
	// cgroup is the container's cgroup, relative to the cgroup root.
	cgroup  string
	init    *process
	started atomic.Bool
}

func (c *container) status() string {
	switch {
	case c.init.hasExited():
		return "stopped"
	case c.started.Load():
		return "running"
	}
	return "created"
}

// containerTable holds the containers by id, reserved while they are being
// created and published once runc created them, like the process table.
type containerTable struct {
	mu        sync.Mutex
	byID      map[string]*container
	published map[string]bool
}

func newContainerTable() *containerTable {
	return &containerTable{byID: make(map[string]*container), published: make(map[string]bool)}
}

func (t *containerTable) reserve(c *container) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.byID[c.id]; ok {
		return fmt.Errorf("id: container %q: %w", c.id, ErrAlreadyExists)
	}
	t.byID[c.id] = c
	return nil
}

func (t *containerTable) release(c *container) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byID[c.id] == c && !t.published[c.id] {
		delete(t.byID, c.id)
	}
}

func (t *containerTable) publish(c *container) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.published[c.id] = true
}

func (t *containerTable) get(id string) (*container, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.published[id] {
		return nil, fmt.Errorf("container %q: %w", id, ErrNotFound)
	}
	return t.byID[id], nil
}

// remove forgets a published container; it is a no-op for an unknown id.
func (t *containerTable) remove(c *container) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byID[c.id] == c {
		delete(t.byID, c.id)
		delete(t.published, c.id)
	}
}

func (t *containerTable) list() []*container {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*container, 0, len(t.published))
	for id := range t.published {
		out = append(out, t.byID[id])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}
