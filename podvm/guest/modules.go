package guest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// DefaultModules are the modules the agent needs: virtio transport and
// devices (block, net, console for the agent channel under QEMU, rng so the
// guest's entropy pool fills quickly, balloon so the guest reports the
// memory it frees to the host), vsock for the Cloud Hypervisor agent
// channel, virtio-fs for rootfs and volumes, and overlay for container
// rootfs, and bridge, so that a privileged container can manage the pod
// VM's network as it could its own host's. Their dependencies are added by
// [ModuleIndex.Resolve].
var DefaultModules = []string{
	"virtio_pci",
	"virtio_blk",
	"virtio_net",
	"virtio_console",
	"vsock",
	"vmw_vsock_virtio_transport",
	"fuse",
	"virtiofs",
	"overlay",
	"virtio_rng",
	"bridge",
	"virtio_balloon",
}

var (
	// ErrModuleNotFound means a requested module, or a dependency of one, is
	// neither in modules.dep nor built into the kernel.
	ErrModuleNotFound = errors.New("kernel module not found")
	// ErrModuleCycle means modules.dep describes a dependency cycle, so no
	// load order exists.
	ErrModuleCycle = errors.New("kernel module dependency cycle")
	// ErrModulesDep means modules.dep could not be parsed.
	ErrModulesDep = errors.New("malformed modules.dep")
)

// Module is one loadable kernel module.
type Module struct {
	// Name is the module name as the kernel reports it in /proc/modules
	// (dashes in the file name become underscores).
	Name string
	// Path is relative to /lib/modules/<version>, as in modules.dep, e.g.
	// "kernel/fs/fuse/fuse.ko".
	Path string
}

// ModuleIndex is the dependency information of one kernel's modules.
type ModuleIndex struct {
	byName  map[string]moduleEntry
	builtin map[string]bool
}

type moduleEntry struct {
	path string
	deps []string // names, in modules.dep order
}

// ModuleName returns the kernel's name for a module file or name:
// "kernel/drivers/char/hw_random/virtio-rng.ko" and "virtio-rng" both give
// "virtio_rng". The kernel treats '-' and '_' in module names as equal and
// reports underscores, so names are compared in that form.
func ModuleName(p string) string {
	base := path.Base(p)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// LoadModuleIndex reads modules.dep, and modules.builtin if present, from a
// kernel's module directory (…/lib/modules/<version>) as written by depmod.
func LoadModuleIndex(moduleDir string) (*ModuleIndex, error) {
	f, err := os.Open(filepath.Join(moduleDir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("load module index: %w", err)
	}
	defer f.Close()
	ix, err := ParseModulesDep(f)
	if err != nil {
		return nil, fmt.Errorf("load module index %s: %w", f.Name(), err)
	}
	b, err := os.Open(filepath.Join(moduleDir, "modules.builtin"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		// A kernel without built-in modules has no such file; nothing to add.
		return ix, nil
	case err != nil:
		return nil, fmt.Errorf("load module index: %w", err)
	}
	defer b.Close()
	if err := ix.addBuiltin(b); err != nil {
		return nil, fmt.Errorf("load module index %s: %w", b.Name(), err)
	}
	return ix, nil
}

// ParseModulesDep parses depmod's modules.dep: one line per module,
// "path: dep-path dep-path …", paths relative to the module directory.
func ParseModulesDep(r io.Reader) (*ModuleIndex, error) {
	ix := &ModuleIndex{byName: map[string]moduleEntry{}, builtin: map[string]bool{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		mod, deps, ok := strings.Cut(line, ":")
		mod = strings.TrimSpace(mod)
		if !ok || mod == "" {
			return nil, fmt.Errorf("%w: line %d: want \"path: deps…\", got %q", ErrModulesDep, n, line)
		}
		name := ModuleName(mod)
		if prev, dup := ix.byName[name]; dup {
			return nil, fmt.Errorf("%w: line %d: module %s listed twice (%s and %s)", ErrModulesDep, n, name, prev.path, mod)
		}
		e := moduleEntry{path: mod}
		for _, d := range strings.Fields(deps) {
			e.deps = append(e.deps, ModuleName(d))
		}
		ix.byName[name] = e
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read modules.dep: %w", err)
	}
	return ix, nil
}

// addBuiltin records the modules listed in modules.builtin (one path per
// line), so that requesting one of them is not an error: it is simply
// already in the kernel.
func (ix *ModuleIndex) addBuiltin(r io.Reader) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			ix.builtin[ModuleName(line)] = true
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read modules.builtin: %w", err)
	}
	return nil
}

// Resolve returns the requested modules and everything they depend on, each
// once, every module after all of its dependencies: the order in which they
// must be loaded. Built-in modules are left out. The order is deterministic
// for a given index and request.
func (ix *ModuleIndex) Resolve(names []string) ([]Module, error) {
	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var order []Module
	// stack holds the chain being visited, so a cycle can be reported as
	// the path that closes it.
	var stack []string
	var visit func(name, neededBy string) error
	visit = func(name, neededBy string) error {
		switch state[name] {
		case done:
			return nil
		case visiting:
			i := len(stack) - 1
			for i > 0 && stack[i] != name {
				i--
			}
			cycle := append(append([]string{}, stack[i:]...), name)
			return fmt.Errorf("%w: %s", ErrModuleCycle, strings.Join(cycle, " -> "))
		}
		e, ok := ix.byName[name]
		if !ok {
			if ix.builtin[name] {
				state[name] = done
				return nil
			}
			if neededBy != "" {
				return fmt.Errorf("%w: %s (needed by %s)", ErrModuleNotFound, name, neededBy)
			}
			return fmt.Errorf("%w: %s", ErrModuleNotFound, name)
		}
		state[name] = visiting
		stack = append(stack, name)
		for _, d := range e.deps {
			if err := visit(d, name); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = done
		order = append(order, Module{Name: name, Path: e.path})
		return nil
	}
	for _, n := range names {
		if err := visit(ModuleName(n), ""); err != nil {
			return nil, err
		}
	}
	return order, nil
}
