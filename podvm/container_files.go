package podvm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"

	"golang.org/x/sys/unix"

	"github.com/podvisor/podvisor/podvm/mountns"
)

// Host files of a container inside the pod's shared directory:
// containers/<id>/rootfs (the overlay) and containers/<id>/mounts/<name>
// (bind mounts of CRI mounts' host paths). The guest sees them under
// GuestContainersDir.

var mountNamePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

// PrepareRootfs mounts the container's rootfs in this VM's shared directory
// (see the package-level PrepareRootfs) and returns its guest path.
func (v *VM) PrepareRootfs(ctx context.Context, containerID string, lowerDirs []string, upperRoot string, userns IDMapping) (string, error) {
	if v.sharedDir == "" {
		return "", fmt.Errorf("%w: VM %s has no shared directory", ErrInvalidContainer, v.id)
	}
	return inMountNS(v, func() (string, error) {
		guest, _, err := PrepareRootfs(ctx, v.sharedDir, containerID, lowerDirs, upperRoot, userns)
		return guest, err
	})
}

// ShareHostPath bind-mounts hostPath (a file or directory, symlinks
// already resolved by the caller) into the container's part of the shared
// directory and returns the guest path to use as an OCI bind-mount source.
// A read-only share is read-only on the host side too, so a guest cannot
// write through it whatever its OCI spec says.
//
// hostPath is resolved and its mount tree cloned in the host's mount
// namespace, so that mounts the host made there since the pod started
// count; the clone is then moved into the VM's namespace. The host's own
// mounts stay free: it can unmount and remove a submount of a volume while
// the pod runs.
func (v *VM) ShareHostPath(containerID, name, hostPath string, readOnly, recursive bool) (string, error) {
	target, err := v.mountTarget(containerID, name)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(hostPath) {
		return "", fmt.Errorf("%w: host path %q is not absolute", ErrInvalidContainer, hostPath)
	}
	fi, err := os.Stat(hostPath)
	if err != nil {
		return "", fmt.Errorf("%w: host path %q: %v", ErrInvalidContainer, hostPath, err)
	}
	tree, err := cloneTree(hostPath, readOnly, recursive)
	if err != nil {
		return "", err
	}
	defer unix.Close(tree)
	err = v.inMountNS(func() error {
		if err := makeMountPoint(target, fi.IsDir()); err != nil {
			return err
		}
		if err := moveTree(tree, target); err != nil {
			os.Remove(target)
			return fmt.Errorf("bind %s: %w", hostPath, err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return path.Join(GuestContainersDir, containerID, "mounts", name), nil
}

// makeMountPoint creates target, a directory or an empty file, and its
// parents. It fails if target exists.
// mountTarget is where a share named name of the container is mounted in
// the shared directory, after checking both names.
func (v *VM) mountTarget(containerID, name string) (string, error) {
	switch {
	case v.sharedDir == "":
		return "", fmt.Errorf("%w: VM %s has no shared directory", ErrInvalidContainer, v.id)
	case !idPattern.MatchString(containerID):
		return "", fmt.Errorf("%w: container ID %q", ErrInvalidContainer, containerID)
	case !mountNamePattern.MatchString(name):
		return "", fmt.Errorf("%w: mount name %q", ErrInvalidContainer, name)
	}
	return filepath.Join(v.sharedDir, "containers", containerID, "mounts", name), nil
}

func makeMountPoint(target string, dir bool) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	var err error
	if dir {
		err = os.Mkdir(target, 0o755)
	} else {
		var f *os.File
		if f, err = os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err == nil {
			f.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("create mount point %s: %w", target, err)
	}
	return nil
}

// ReleaseContainerFiles unmounts everything mounted for the container in
// the shared directory and removes its files and its upper directory under
// upperRoot. It is idempotent and works from a fresh handle after a daemon
// restart: it finds the mounts in the VM's mount table, not in memory. It never
// removes anything while a mount remains below the container's directory,
// so a bind-mounted host volume cannot be deleted through it.
func (v *VM) ReleaseContainerFiles(containerID, upperRoot string) error {
	if !idPattern.MatchString(containerID) {
		return fmt.Errorf("%w: container ID %q", ErrInvalidContainer, containerID)
	}
	if v.sharedDir == "" {
		return nil
	}
	ctrDir := filepath.Join(v.sharedDir, "containers", containerID)
	return v.inMountNS(func() error {
		if err := UnmountBelow(ctrDir); err != nil {
			return err
		}
		if left, err := mountns.MountsUnder(ctrDir); err != nil || len(left) > 0 {
			return fmt.Errorf("container %s: mounts remain under %s: %v %v", containerID, ctrDir, left, err)
		}
		errs := []error{os.RemoveAll(ctrDir)}
		if upperRoot != "" {
			errs = append(errs, os.RemoveAll(filepath.Join(upperRoot, containerID)))
		}
		return errors.Join(errs...)
	})
}

// UnmountBelow unmounts every mount at or below dir, deepest first, in the
// calling thread's mount namespace. It reads the mount table, so it also
// finds what an earlier daemon mounted.
func UnmountBelow(dir string) error {
	mounts, err := mountns.MountsUnder(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		errs = append(errs, unmount(m))
	}
	return errors.Join(errs...)
}

// bindTree binds src and the mounts below it at target, read-only (only
// the top mount, or every mount when recursive) from the moment it appears
// there, all in the calling thread's mount namespace.
func bindTree(src, target string, readOnly, recursive bool) error {
	tree, err := cloneTree(src, readOnly, recursive)
	if err != nil {
		return err
	}
	defer unix.Close(tree)
	if err := moveTree(tree, target); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	return nil
}

// cloneTree clones the mount tree at src, detached, and makes it read-only
// as asked; moveTree attaches it. A bind remounted read-only once in place
// is not enough: the copy of the mount that propagation already gave
// virtiofsd's namespace would stay writable, and a guest root that
// remounts its side read-write would write to the host. The clone is
// resolved in the calling thread's namespace and may be moved into
// another.
func cloneTree(src string, readOnly, recursive bool) (fd int, retErr error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return -1, fmt.Errorf("clone mount tree of %s: %w", src, err)
	}
	if readOnly {
		flags := unix.AT_EMPTY_PATH
		if recursive {
			flags |= unix.AT_RECURSIVE
		}
		if err := unix.MountSetattr(fd, "", uint(flags), &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("make %s read-only: %w", src, err)
		}
	}
	return fd, nil
}

// moveTree attaches a tree cloneTree made at target, in the calling
// thread's mount namespace.
func moveTree(tree int, target string) error {
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach at %s: %w", target, err)
	}
	return nil
}

// Submounts lists the mount points strictly below dir in the host's mount
// namespace, relative to dir, each once, parents first: the submounts a
// share of dir carries (ShareHostPath clones the whole tree).
func Submounts(dir string) ([]string, error) {
	all, err := mountns.MountsUnder(dir)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for i := len(all) - 1; i >= 0; i-- {
		rel, err := filepath.Rel(dir, all[i])
		if err != nil || rel == "." || seen[rel] {
			continue
		}
		seen[rel] = true
		out = append(out, rel)
	}
	return out, nil
}
