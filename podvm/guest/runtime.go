package guest

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// The container runtime in the guest is Debian's runc 1.1.5
// (runc=1.1.5+ds1-1+deb12u1), unpacked from its pinned .deb together with
// the pinned libseccomp2 and libc6 packages it links against. The image gets
// runc plus exactly the ELF DT_NEEDED closure of it and the dynamic loader
// named by its PT_INTERP, each at its standard path — still no shell and no
// busybox. The libraries come from the pinned packages rather than the build
// host's /lib so that the image depends only on recorded digests.

// DefaultRuntimeBinary is where runc is installed in the image.
const DefaultRuntimeBinary = "/usr/sbin/runc"

// libDirs are the directories the dynamic loader searches without an
// ld.so.cache, in its order (Debian's multiarch directories first).
var libDirs = []string{
	"/lib/x86_64-linux-gnu",
	"/usr/lib/x86_64-linux-gnu",
	"/lib64",
	"/usr/lib64",
	"/lib",
	"/usr/lib",
}

// maxLinks bounds symbolic links followed while resolving one path.
const maxLinks = 40

// RuntimeConfig says where the container runtime comes from.
type RuntimeConfig struct {
	// Root is the directory the runtime's packages are unpacked into.
	Root string
	// Binary is the runtime's path inside Root and inside the image;
	// DefaultRuntimeBinary when empty.
	Binary string
	// Packages are recorded in the manifest.
	Packages []PackageInfo
}

// PackageInfo identifies a Debian package the image took files from.
type PackageInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// SHA256 is the digest of the .deb, as apt's signed index lists it.
	SHA256 string `json:"sha256"`
}

// RuntimeFile is one file of the runtime: where it goes in the image and
// the regular file on the build host that provides its content.
type RuntimeFile struct {
	ImagePath string
	HostPath  string
	Mode      uint64
}

// ResolveRuntime returns the binary at bin (inside root) and the files it
// needs to run: its dynamic loader and the transitive closure of its
// DT_NEEDED libraries, each found the way the loader finds it and installed
// at that path with the content of the file it resolves to inside root.
func ResolveRuntime(root, bin string) ([]RuntimeFile, error) {
	if !path.IsAbs(bin) || path.Clean(bin) != bin {
		return nil, fmt.Errorf("runtime binary %q: not an absolute clean path", bin)
	}
	host, err := resolveInRoot(root, bin)
	if err != nil {
		return nil, fmt.Errorf("runtime binary: %w", err)
	}
	files := []RuntimeFile{{ImagePath: bin, HostPath: host, Mode: 0o755}}
	seen := map[string]bool{bin: true}
	queue := []string{host}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		interp, needed, err := elfDeps(cur)
		if err != nil {
			return nil, err
		}
		if interp != "" && !seen[interp] {
			h, err := resolveInRoot(root, interp)
			if err != nil {
				return nil, fmt.Errorf("%s: interpreter: %w", cur, err)
			}
			seen[interp] = true
			files = append(files, RuntimeFile{ImagePath: interp, HostPath: h, Mode: 0o755})
			queue = append(queue, h)
		}
		for _, lib := range needed {
			img, h, err := findLibrary(root, lib)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", cur, err)
			}
			if seen[img] {
				continue
			}
			seen[img] = true
			files = append(files, RuntimeFile{ImagePath: img, HostPath: h, Mode: 0o644})
			queue = append(queue, h)
		}
	}
	slices.SortFunc(files, func(a, b RuntimeFile) int { return strings.Compare(a.ImagePath, b.ImagePath) })
	return files, nil
}

// elfDeps returns the PT_INTERP and DT_NEEDED entries of an ELF file.
func elfDeps(file string) (string, []string, error) {
	f, err := elf.Open(file)
	if err != nil {
		return "", nil, fmt.Errorf("read ELF %s: %w", file, err)
	}
	defer f.Close()
	var interp string
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return "", nil, fmt.Errorf("read PT_INTERP of %s: %w", file, err)
		}
		interp = strings.TrimRight(string(b), "\x00")
		if !path.IsAbs(interp) || path.Clean(interp) != interp {
			return "", nil, fmt.Errorf("%s: interpreter %q is not an absolute clean path", file, interp)
		}
	}
	needed, err := f.ImportedLibraries()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return "", nil, fmt.Errorf("read DT_NEEDED of %s: %w", file, err)
	}
	for _, n := range needed {
		if n == "" || strings.Contains(n, "/") {
			return "", nil, fmt.Errorf("%s: DT_NEEDED %q is not a plain library name", file, n)
		}
	}
	return interp, needed, nil
}

// findLibrary looks lib up in libDirs inside root.
func findLibrary(root, lib string) (imagePath, hostPath string, err error) {
	for _, d := range libDirs {
		p := path.Join(d, lib)
		h, err := resolveInRoot(root, p)
		if err == nil {
			return p, h, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", "", err
		}
	}
	return "", "", fmt.Errorf("library %s not found under %s in %v: %w", lib, root, libDirs, os.ErrNotExist)
}

// resolveInRoot resolves p as if root were /: symbolic links, absolute or
// relative, never lead outside root. The result must be a regular file.
func resolveInRoot(root, p string) (string, error) {
	cur := "/"
	rest := strings.Split(strings.TrimPrefix(p, "/"), "/")
	links := 0
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, name)
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("%s: too many symbolic links", p)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(strings.TrimPrefix(target, "/"), "/"), rest...)
	}
	host := filepath.Join(root, cur)
	fi, err := os.Stat(host)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s resolves to %s, not a regular file", p, cur)
	}
	return host, nil
}
