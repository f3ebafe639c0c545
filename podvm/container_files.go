package podvm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
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
	guest, _, err := PrepareRootfs(ctx, v.sharedDir, containerID, lowerDirs, upperRoot, userns)
	return guest, err
}

// ShareHostPath bind-mounts hostPath (a file or directory, symlinks
// already resolved by the caller) into the container's part of the shared
// directory and returns the guest path to use as an OCI bind-mount source.
// A read-only share is read-only on the host side too, so a guest cannot
// write through it whatever its OCI spec says.
func (v *VM) ShareHostPath(containerID, name, hostPath string, readOnly, recursive bool) (string, error) {
	switch {
	case v.sharedDir == "":
		return "", fmt.Errorf("%w: VM %s has no shared directory", ErrInvalidContainer, v.id)
	case !idPattern.MatchString(containerID):
		return "", fmt.Errorf("%w: container ID %q", ErrInvalidContainer, containerID)
	case !mountNamePattern.MatchString(name):
		return "", fmt.Errorf("%w: mount name %q", ErrInvalidContainer, name)
	case !filepath.IsAbs(hostPath):
		return "", fmt.Errorf("%w: host path %q is not absolute", ErrInvalidContainer, hostPath)
	}
	fi, err := os.Stat(hostPath)
	if err != nil {
		return "", fmt.Errorf("%w: host path %q: %v", ErrInvalidContainer, hostPath, err)
	}
	dir := filepath.Join(v.sharedDir, "containers", containerID, "mounts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	target := filepath.Join(dir, name)
	if fi.IsDir() {
		err = os.Mkdir(target, 0o755)
	} else {
		var f *os.File
		if f, err = os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err == nil {
			f.Close()
		}
	}
	if err != nil {
		return "", fmt.Errorf("create mount point %s: %w", target, err)
	}
	if err := bindTree(hostPath, target, readOnly, recursive); err != nil {
		os.Remove(target)
		return "", err
	}
	return path.Join(GuestContainersDir, containerID, "mounts", name), nil
}

// ReleaseContainerFiles unmounts everything mounted for the container in
// the shared directory and removes its files and its upper directory under
// upperRoot. It is idempotent and works from a fresh handle after a daemon
// restart: it finds the mounts in the mount table, not in memory. It never
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
	if err := UnmountBelow(ctrDir); err != nil {
		return err
	}
	if left, err := mountsUnder(ctrDir); err != nil || len(left) > 0 {
		return fmt.Errorf("container %s: mounts remain under %s: %v %v", containerID, ctrDir, left, err)
	}
	errs := []error{os.RemoveAll(ctrDir)}
	if upperRoot != "" {
		errs = append(errs, os.RemoveAll(filepath.Join(upperRoot, containerID)))
	}
	return errors.Join(errs...)
}

// UnmountBelow unmounts every mount at or below dir, deepest first. It
// reads the mount table, so it also finds what an earlier daemon mounted.
func UnmountBelow(dir string) error {
	mounts, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		errs = append(errs, unmount(m))
	}
	return errors.Join(errs...)
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for space, …) of
// /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var n int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &n); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// bindTree binds hostPath and the mounts below it at target, read-only
// (only the top mount, or every mount when recursive) from the moment it
// appears there. A bind remounted read-only afterwards is not enough: the
// copy of the mount that propagation already gave virtiofsd's namespace
// would stay writable, and a guest root that remounts its side read-write
// would write to the host. So the tree is cloned detached, made read-only,
// then moved into place.
func bindTree(hostPath, target string, readOnly, recursive bool) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, hostPath, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return fmt.Errorf("clone mount tree of %s: %w", hostPath, err)
	}
	defer unix.Close(fd)
	if readOnly {
		flags := unix.AT_EMPTY_PATH
		if recursive {
			flags |= unix.AT_RECURSIVE
		}
		if err := unix.MountSetattr(fd, "", uint(flags), &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
			return fmt.Errorf("make %s read-only: %w", hostPath, err)
		}
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("bind %s at %s: %w", hostPath, target, err)
	}
	return nil
}
