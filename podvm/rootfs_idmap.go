package podvm

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// IDRange maps Size IDs from ContainerID inside a user namespace to HostID
// outside it.
type IDRange struct {
	ContainerID, HostID, Size uint32
}

// IDMapping is a pod user namespace's mapping, one range of UIDs and one of
// GIDs as kubelet sends them; the outside IDs are guest IDs. The zero value
// means no user namespace.
type IDMapping struct {
	UID, GID IDRange
}

// Zero reports whether m is no mapping.
func (m IDMapping) Zero() bool { return m.UID.Size == 0 && m.GID.Size == 0 }

// rootIDs returns the outside IDs of the namespace's root.
func (m IDMapping) rootIDs() (uid, gid int, err error) {
	if m.UID.ContainerID != 0 || m.GID.ContainerID != 0 || m.UID.Size == 0 || m.GID.Size == 0 {
		return 0, 0, fmt.Errorf("%w: user namespace mapping %+v does not map ID 0", ErrInvalidContainer, m)
	}
	return int(m.UID.HostID), int(m.GID.HostID), nil
}

// idmapLayers returns, for each of dirs, a path naming an ID-mapped,
// read-only clone of it: a file the layer has owned by host ID n appears
// owned by the ID that n maps to in m, so the container's root sees its
// image's files as its own, as with containerd's ID-mapped layers.
// virtio-fs in the guest kernel cannot ID-map, so this is done on the host
// and virtiofsd passes the mapped owners through.
//
// The clones are detached mounts, attached nowhere and in no mount
// namespace's tree: each is held by a file descriptor of this process and
// named /proc/self/fd/<fd>. They need to exist only while the overlay that
// uses them as lower layers is mounted, in whatever mount namespace that
// happens: overlayfs takes private clones of its layers at mount time.
// release closes them; call it once the overlay is mounted (or failed).
func idmapLayers(dirs []string, m IDMapping) (paths []string, release func(), retErr error) {
	userns, err := newUserNamespace(m)
	if err != nil {
		return nil, nil, err
	}
	defer userns.Close()
	var fds []int
	release = func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	defer func() {
		if retErr != nil {
			release()
		}
	}()
	for _, d := range dirs {
		fd, err := idmappedClone(d, userns)
		if err != nil {
			return nil, nil, err
		}
		fds = append(fds, fd)
		paths = append(paths, fmt.Sprintf("/proc/self/fd/%d", fd))
	}
	return paths, release, nil
}

// idmappedClone returns a detached, read-only clone of the mount at dir,
// ID-mapped through userns.
func idmappedClone(dir string, userns *os.File) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("clone %s: %w", dir, err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_RDONLY, Userns_fd: uint64(userns.Fd())}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("ID-map %s: %w", dir, err)
	}
	return fd, nil
}

// newUserNamespace returns a file of a new user namespace with m's
// mappings, the form mount_setattr takes an ID mapping in. A user
// namespace needs a process to be created in; this one is a child traced
// from its start, so it stops at its exec before running any code, and is
// killed once its namespace is open.
func newUserNamespace(m IDMapping) (*os.File, error) {
	attr := &syscall.ProcAttr{Sys: &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: int(m.UID.ContainerID), HostID: int(m.UID.HostID), Size: int(m.UID.Size)}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: int(m.GID.ContainerID), HostID: int(m.GID.HostID), Size: int(m.GID.Size)}},
		Ptrace:      true,
		Pdeathsig:   syscall.SIGKILL,
	}}
	// The tracer is the forking thread: keep the whole exchange on it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid, err := syscall.ForkExec("/proc/self/exe", []string{"podvisor-userns"}, attr)
	if err != nil {
		return nil, fmt.Errorf("create a user namespace: %w", err)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", pid))
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for {
		if _, werr := syscall.Wait4(pid, nil, 0, nil); !errors.Is(werr, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open the new user namespace: %w", err)
	}
	return f, nil
}

// IDMappedLayersSupported reports (nil) whether directories under dir can
// be ID-mapped as idmapLayers does: the host kernel and dir's filesystem
// must support ID-mapped mounts. Pod user namespaces depend on it.
func IDMappedLayersSupported(dir string) error {
	userns, err := newUserNamespace(IDMapping{UID: IDRange{HostID: 1 << 16, Size: 1 << 16}, GID: IDRange{HostID: 1 << 16, Size: 1 << 16}})
	if err != nil {
		return err
	}
	defer userns.Close()
	fd, err := idmappedClone(dir, userns)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}
