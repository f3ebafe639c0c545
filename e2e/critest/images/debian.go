package images

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// Programs of the Debian tree that the userland carries besides busybox:
// critest runs `ipcs -m` (HostIpc specs) and `pgrep sleep` (checkSleepCmd),
// which Debian's busybox has no applets for.
var extraPrograms = []string{"usr/bin/ipcs", "usr/bin/pgrep"}

// libDirs are the directories, relative to the tree, where the dynamic
// loader of Debian's amd64 glibc finds libraries without an ld.so.cache.
var libDirs = []string{"lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib"}

// Userland is the base layer of every busybox-based stand-in, read from
// root, a tree in which the pinned Debian packages were unpacked
// (conformance.mk): /bin/busybox with a hard link per applet in /bin, ipcs
// and pgrep, the DT_NEEDED closure and loader of those three, and the
// accounts and directories of upstream's busybox image.
func Userland(root string) (Layer, error) {
	var l Layer
	seen := map[string]bool{}
	for _, prog := range append([]string{"bin/busybox"}, extraPrograms...) {
		files, err := elfClosure(root, prog)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if seen[f] {
				continue
			}
			seen[f] = true
			e, err := treeEntry(root, f)
			if err != nil {
				return nil, err
			}
			l = append(l, e)
		}
	}
	applets, err := busyboxApplets(root)
	if err != nil {
		return nil, err
	}
	for _, a := range applets {
		if p := "bin/" + a; !seen[p] {
			l = append(l, Entry{Path: p, HardLink: "bin/busybox"})
		}
	}
	return append(l, baseFiles()...), nil
}

// elfClosure lists prog, its program interpreter and the libraries of its
// DT_NEEDED closure, each with the symlinks leading to it, as paths
// relative to root. A needed library missing from root is an error: the
// pinned package list must be complete.
func elfClosure(root, prog string) ([]string, error) {
	var out []string
	done := map[string]bool{}
	var visit func(p, needer string) error
	visit = func(p, needer string) error {
		chain, err := resolveInTree(root, p)
		if err != nil {
			return fmt.Errorf("%s (needed by %s): %w", p, needer, err)
		}
		out = append(out, chain...)
		real := chain[len(chain)-1]
		if done[real] {
			return nil
		}
		done[real] = true
		f, err := elf.Open(filepath.Join(root, real))
		if err != nil {
			return fmt.Errorf("%s: %w", real, err)
		}
		defer f.Close()
		if f.Machine != elf.EM_X86_64 {
			return fmt.Errorf("%s: not an x86-64 ELF file", real)
		}
		for _, prog := range f.Progs {
			if prog.Type != elf.PT_INTERP {
				continue
			}
			b := make([]byte, prog.Filesz)
			if _, err := prog.ReadAt(b, 0); err != nil {
				return fmt.Errorf("%s: PT_INTERP: %w", real, err)
			}
			if err := visit(strings.TrimLeft(string(bytes.TrimRight(b, "\x00")), "/"), real); err != nil {
				return err
			}
		}
		needed, err := f.ImportedLibraries()
		if err != nil {
			return fmt.Errorf("%s: DT_NEEDED: %w", real, err)
		}
		for _, lib := range needed {
			p, ok := findLib(root, lib)
			if !ok {
				return fmt.Errorf("%s, needed by %s, is in none of %v of %s: add its package to CRITEST_DEBS", lib, real, libDirs, root)
			}
			if err := visit(p, real); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(prog, "the image"); err != nil {
		return nil, err
	}
	return out, nil
}

func findLib(root, name string) (string, bool) {
	for _, d := range libDirs {
		p := path.Join(d, name)
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			return p, true
		}
	}
	return "", false
}

// resolveInTree follows p's symlinks inside root and returns every path on
// the way, ending with a regular file. Absolute targets are taken relative
// to root; a target leaving root, or a symlinked directory on the way (which
// a layer could not hold beside the files under it), is refused.
func resolveInTree(root, p string) ([]string, error) {
	var chain []string
	for i := 0; i < 16; i++ {
		p = path.Clean(p)
		if p == "." || p == ".." || strings.HasPrefix(p, "../") {
			return nil, fmt.Errorf("path leaves the tree")
		}
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if fi, err := os.Lstat(filepath.Join(root, d)); err == nil && fi.Mode()&os.ModeSymlink != 0 {
				return nil, fmt.Errorf("%s: directory %s is a symlink", p, d)
			}
		}
		chain = append(chain, p)
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			return nil, err
		}
		switch {
		case fi.Mode().IsRegular():
			return chain, nil
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(filepath.Join(root, p))
			if err != nil {
				return nil, err
			}
			if strings.HasPrefix(target, "/") {
				p = strings.TrimLeft(target, "/")
			} else {
				p = path.Join(path.Dir(p), target)
			}
		default:
			return nil, fmt.Errorf("%s is neither a file nor a symlink", p)
		}
	}
	return nil, fmt.Errorf("%s: too many symlinks", p)
}

// treeEntry copies root/p into a layer entry: a symlink stays a symlink, a
// regular file keeps its permission bits.
func treeEntry(root, p string) (Entry, error) {
	full := filepath.Join(root, p)
	fi, err := os.Lstat(full)
	if err != nil {
		return Entry{}, err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(full)
		if err != nil {
			return Entry{}, err
		}
		return Entry{Path: p, Link: target}, nil
	}
	data, err := os.ReadFile(full)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Path: p, Data: data, Mode: int64(fi.Mode().Perm())}, nil
}

// busyboxApplets asks the tree's busybox for its applets, running it with
// the tree's own loader and libraries so the host's do not matter.
func busyboxApplets(root string) ([]string, error) {
	chain, err := resolveInTree(root, "lib64/ld-linux-x86-64.so.2")
	if err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	cmd := exec.Command(filepath.Join(root, chain[len(chain)-1]), "--library-path",
		filepath.Join(root, "lib/x86_64-linux-gnu"), filepath.Join(root, "bin/busybox"), "--list")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	var applets []string
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" && !strings.Contains(a, "/") {
			applets = append(applets, a)
		}
	}
	if len(applets) < 100 {
		return nil, fmt.Errorf("busybox --list gave only %d applets", len(applets))
	}
	return applets, nil
}

// Accounts of upstream's busybox image (www-data and nobody are used by
// critest's user specs).
const (
	passwd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`
	group = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
`
)

func baseFiles() Layer {
	return Layer{
		{Path: "etc/passwd", Data: []byte(passwd)},
		{Path: "etc/group", Data: []byte(group)},
		{Path: "tmp", Dir: true, Mode: 0o1777},
		{Path: "root", Dir: true, Mode: 0o700},
		{Path: "home", Dir: true},
		{Path: "var/www", Dir: true},
		{Path: "var/spool/mail", Dir: true},
		{Path: "usr/sbin", Dir: true},
		{Path: "sbin", Dir: true},
	}
}
