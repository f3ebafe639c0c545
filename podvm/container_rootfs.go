package podvm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// ShareMount makes dir (a pod's shared directory) a mount point of its own
// with shared propagation, so that mounts made under it later — container
// rootfs overlays, volumes — propagate into virtiofsd's private mount
// namespace (virtiofsd's sandbox makes its copy a slave) and so reach the
// guest. Boot calls it inside the VM's mount namespace before virtiofsd
// starts there; the returned undo unmounts it.
func ShareMount(dir string) (undo func() error, err error) {
	if err := unix.Mount(dir, dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return nil, fmt.Errorf("bind mount %s on itself: %w", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		return nil, fmt.Errorf("make %s shared: %w", dir, err)
	}
	return func() error { return unmount(dir) }, nil
}

// maxLowerDirs bounds an overlay's layers; the kernel's limit is 500, and
// the mount data must fit one page.
const maxLowerDirs = 128

// PrepareRootfs mounts a container's root filesystem on the host: an
// overlay of lowerDirs (image layers, topmost first) with the writable
// upper and work directories under upperRoot/<containerID> (outside the
// shared directory, so the guest cannot reach the overlay's internals), at
// sharedDir/containers/<containerID>/rootfs, which the guest sees at
// GuestContainersDir/<containerID>/rootfs through virtio-fs. sharedDir must
// be the pod's shared directory made shared with ShareMount before
// virtiofsd started, and the caller must run in the mount namespace where
// that happened (VM.PrepareRootfs does both), or the mount is not visible
// in the guest.
//
// With a non-zero userns (a pod user namespace's mapping) the lower layers
// are ID-mapped clones (see idmapLayers) and the upper directory belongs
// to the namespace's root, so the container's root owns its rootfs.
//
// cleanup unmounts the overlay (lazily if it is busy) and removes the mount
// point and the upper directory; call it after DeleteContainer.
func PrepareRootfs(ctx context.Context, sharedDir, containerID string, lowerDirs []string, upperRoot string, userns IDMapping) (guestRootfs string, cleanup func() error, retErr error) {
	if !idPattern.MatchString(containerID) {
		return "", nil, fmt.Errorf("%w: container ID %q", ErrInvalidContainer, containerID)
	}
	if err := checkOverlayPaths(lowerDirs, sharedDir, upperRoot); err != nil {
		return "", nil, err
	}
	// Undo steps, run last-first if a later step fails.
	var undo []func() error
	defer func() {
		if retErr != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				retErr = errors.Join(retErr, undo[i]())
			}
		}
	}()
	ctrDir := filepath.Join(sharedDir, "containers", containerID)
	target := filepath.Join(ctrDir, "rootfs")
	if err := os.MkdirAll(target, 0o755); err != nil {
		return "", nil, err
	}
	undo = append(undo, func() error { return os.RemoveAll(ctrDir) })
	upperDir := filepath.Join(upperRoot, containerID)
	upper, work := filepath.Join(upperDir, "upper"), filepath.Join(upperDir, "work")
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", nil, err
		}
	}
	undo = append(undo, func() error { return os.RemoveAll(upperDir) })
	if !userns.Zero() {
		uid, gid, err := userns.rootIDs()
		if err != nil {
			return "", nil, err
		}
		if err := os.Lchown(upper, uid, gid); err != nil {
			return "", nil, err
		}
		mapped, release, err := idmapLayers(lowerDirs, userns)
		if err != nil {
			return "", nil, fmt.Errorf("ID-mapped layers for %s: %w", containerID, err)
		}
		defer release()
		lowerDirs = mapped
	}
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lowerDirs, ":"), upper, work)
	if len(data) >= os.Getpagesize() {
		return "", nil, fmt.Errorf("%w: overlay options of %d bytes exceed a page", ErrInvalidContainer, len(data))
	}
	if err := unix.Mount("overlay", target, "overlay", 0, data); err != nil {
		return "", nil, fmt.Errorf("mount overlay for %s: %w", containerID, err)
	}
	klog.V(2).InfoS("Mounted container rootfs", "containerID", containerID, "target", target, "layers", len(lowerDirs))
	cleanup = func() error {
		if err := unmount(target); err != nil {
			return err
		}
		return errors.Join(os.RemoveAll(ctrDir), os.RemoveAll(upperDir))
	}
	return path.Join(GuestContainersDir, containerID, "rootfs"), cleanup, nil
}

// unmount unmounts target, lazily when it is busy (a guest file handle
// through virtiofsd keeps it so until the guest lets go). Not mounted is
// success.
func unmount(target string) error {
	err := unix.Unmount(target, 0)
	if errors.Is(err, unix.EBUSY) {
		klog.InfoS("Mount busy, detaching it lazily", "target", target)
		err = unix.Unmount(target, unix.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}

// checkOverlayPaths checks an overlay's lower layers (1 to maxLowerDirs)
// and any other paths that go into its mount options: absolute, and
// without the characters that separate those options.
func checkOverlayPaths(lowerDirs []string, others ...string) error {
	if len(lowerDirs) == 0 || len(lowerDirs) > maxLowerDirs {
		return fmt.Errorf("%w: %d lower dirs, want 1-%d", ErrInvalidContainer, len(lowerDirs), maxLowerDirs)
	}
	for _, d := range append(others, lowerDirs...) {
		if !filepath.IsAbs(d) || strings.ContainsAny(d, ",:\\") {
			return fmt.Errorf("%w: path %q must be absolute without , : or \\", ErrInvalidContainer, d)
		}
	}
	return nil
}
