package guest

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ModuleListPath is where the base initramfs lists the modules the agent
// loads, one absolute path per line, in load order.
const ModuleListPath = "/etc/podvisor/modules"

// Device numbers from the kernel's devices.txt.
const (
	memMajor     = 1 // /dev/null is 1:3
	nullMinor    = 3
	ttyAuxMajor  = 5 // /dev/console is 5:1
	consoleMinor = 1
)

// mountpoints are the directories the agent mounts filesystems on. They
// must exist in the initramfs because the root is read from it and nothing
// else creates them; /sys/fs/cgroup is also created by sysfs once mounted,
// but shipping it lets the agent mount cgroup2 in either order.
var mountpoints = []struct {
	path string
	perm uint64
}{
	{"/dev", 0o755},
	{"/etc", 0o755},
	{"/proc", 0o555},
	{"/run", 0o755},
	{"/sys", 0o555},
	{"/sys/fs/cgroup", 0o555},
	{"/tmp", 0o1777},
}

// BaseSpec describes the contents of a base initramfs.
type BaseSpec struct {
	// Agent is the path of the static agent binary, installed as /init.
	Agent string
	// ModuleDir is the kernel's module directory on the build host
	// (…/lib/modules/<KernelVersion>); module paths are relative to it.
	ModuleDir string
	// KernelVersion names the directory under /lib/modules in the image.
	KernelVersion string
	// Modules are the modules to install, in load order (see
	// [ModuleIndex.Resolve]).
	Modules []Module
	// Files are further files to install: the container runtime and the
	// libraries it needs (see [ResolveRuntime]).
	Files []RuntimeFile
}

// WriteBaseInitramfs writes the gzip-compressed newc archive described by
// spec to w. The output depends only on the contents of the inputs (and the
// Go release's gzip encoder), so its digest is reproducible.
func WriteBaseInitramfs(w io.Writer, spec BaseSpec) error {
	var entries []entry
	var opened []*os.File
	defer func() {
		for _, f := range opened {
			f.Close()
		}
	}()

	// addFile streams a host file into the archive rather than reading it
	// whole; the agent alone is tens of MiB.
	addFile := func(dst, src string, perm uint64) error {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		opened = append(opened, f)
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", src)
		}
		// A SectionReader pins the size recorded in the header even if the
		// file changes underneath, and is not an io.Closer, so the cpio
		// writer leaves closing to us.
		entries = append(entries, fileEntry(dst, perm, io.NewSectionReader(f, 0, fi.Size()), fi.Size()))
		return nil
	}

	if spec.KernelVersion == "" || path.Base(spec.KernelVersion) != spec.KernelVersion {
		return fmt.Errorf("base initramfs: kernel version %q is not a plain name", spec.KernelVersion)
	}
	if err := addFile("/init", spec.Agent, 0o755); err != nil {
		return fmt.Errorf("base initramfs: agent: %w", err)
	}
	var list strings.Builder
	imageModDir := path.Join("/lib/modules", spec.KernelVersion)
	for _, m := range spec.Modules {
		if path.Ext(m.Path) != ".ko" {
			// The agent loads modules with finit_module and no
			// decompression flags, so only plain .ko files work.
			return fmt.Errorf("base initramfs: module %s: %s is not an uncompressed .ko", m.Name, m.Path)
		}
		dst := path.Join(imageModDir, m.Path)
		if !strings.HasPrefix(dst, imageModDir+"/") {
			return fmt.Errorf("base initramfs: module %s: path %q escapes the module directory", m.Name, m.Path)
		}
		if err := addFile(dst, filepath.Join(spec.ModuleDir, filepath.FromSlash(m.Path)), 0o644); err != nil {
			return fmt.Errorf("base initramfs: module %s: %w", m.Name, err)
		}
		list.WriteString(dst + "\n")
	}
	for _, f := range spec.Files {
		if !validArchivePath(f.ImagePath) {
			return fmt.Errorf("base initramfs: file %q: not an absolute clean path", f.ImagePath)
		}
		if err := addFile(f.ImagePath, f.HostPath, f.Mode); err != nil {
			return fmt.Errorf("base initramfs: %s: %w", f.ImagePath, err)
		}
	}
	listData := strings.NewReader(list.String())
	entries = append(entries, fileEntry(ModuleListPath, 0o644, listData, listData.Size()))
	for _, m := range mountpoints {
		entries = append(entries, dirEntry(m.path, m.perm))
	}
	// PID 1 gets /dev/console as stdin/stdout/stderr before anything is
	// mounted; without the node the agent starts with no stdio at all.
	entries = append(entries,
		charDevEntry("/dev/console", 0o600, ttyAuxMajor, consoleMinor),
		charDevEntry("/dev/null", 0o666, memMajor, nullMinor),
	)

	// BestCompression: the image is built once and loaded on every boot,
	// and a smaller initrd is faster to load into the guest.
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return fmt.Errorf("base initramfs: %w", err)
	}
	if err := writeArchive(zw, entries); err != nil {
		return fmt.Errorf("base initramfs: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("base initramfs: compress: %w", err)
	}
	return nil
}
