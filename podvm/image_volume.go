package podvm

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// ShareImage mounts an image's file tree read-only into the container's
// part of the shared directory (an image volume) and returns the guest
// path of subPath inside it ("" for the image's root). lowerDirs are the
// image's layer directories, topmost first. The tree is read-only from the
// moment it appears, so virtiofsd never serves it writable.
//
// subPath is resolved on the host inside the image's tree: symlinks in it
// cannot leave the tree, and a sub-path that does not exist is an error.
// ReleaseContainerFiles unmounts it with the container's other files. The
// mount lives in the pod's mount namespace, as the container's rootfs.
func (v *VM) ShareImage(containerID, name string, lowerDirs []string, subPath string) (string, error) {
	return inMountNS(v, func() (string, error) { return v.shareImage(containerID, name, lowerDirs, subPath) })
}

func (v *VM) shareImage(containerID, name string, lowerDirs []string, subPath string) (guestPath string, retErr error) {
	target, err := v.mountTarget(containerID, name)
	if err != nil {
		return "", err
	}
	if err := checkOverlayPaths(lowerDirs); err != nil {
		return "", err
	}
	if err := makeMountPoint(target, true); err != nil {
		return "", err
	}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, unmount(target), os.Remove(target))
		}
	}()
	if len(lowerDirs) == 1 {
		// overlayfs wants two lower layers when it has no upper one.
		if err := bindTree(lowerDirs[0], target, true, true); err != nil {
			return "", err
		}
	} else {
		data := "lowerdir=" + strings.Join(lowerDirs, ":")
		if len(data) >= os.Getpagesize() {
			return "", fmt.Errorf("%w: overlay options of %d bytes exceed a page", ErrInvalidContainer, len(data))
		}
		if err := unix.Mount("overlay", target, "overlay", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, data); err != nil {
			return "", fmt.Errorf("mount image overlay for %s: %w", containerID, err)
		}
	}
	rel, err := resolveInside(target, subPath)
	if err != nil {
		return "", err
	}
	klog.V(2).InfoS("Mounted image volume", "containerID", containerID, "target", target, "layers", len(lowerDirs), "subPath", rel)
	return path.Join(GuestContainersDir, containerID, "mounts", name, rel), nil
}

// resolveInside resolves sub (relative) inside root as if root were "/",
// and returns the resolved path relative to root, free of symlinks. A path
// that does not exist is ErrInvalidContainer.
func resolveInside(root, sub string) (string, error) {
	if sub == "" {
		return "", nil
	}
	if filepath.IsAbs(sub) || !filepath.IsLocal(sub) {
		return "", fmt.Errorf("%w: sub-path %q must be relative and stay inside the image", ErrInvalidContainer, sub)
	}
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", root, err)
	}
	defer unix.Close(rfd)
	realRoot, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", rfd))
	if err != nil {
		return "", err
	}
	fd, err := unix.Openat2(rfd, sub, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return "", fmt.Errorf("%w: sub-path %q in the image: %v", ErrInvalidContainer, sub, err)
	}
	defer unix.Close(fd)
	real, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(realRoot, real)
	if err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%w: sub-path %q resolves outside the image (%s)", ErrInvalidContainer, sub, real)
	}
	if rel == "." {
		return "", nil
	}
	return rel, nil
}
