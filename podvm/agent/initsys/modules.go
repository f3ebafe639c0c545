package initsys

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// Module is one kernel module to load.
type Module struct {
	// Path is the module file in the initramfs.
	Path string
	// Params are its parameters ("opt=1 other=x"), often empty.
	Params string
}

// Compressed reports whether the file must be decompressed by the kernel.
func (m Module) Compressed() bool {
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		if strings.HasSuffix(m.Path, ext) {
			return true
		}
	}
	return false
}

// maxModuleList bounds the modules file; a real list is a few KiB.
const maxModuleList = 1 << 20

// ParseModuleList reads a modules file: one module per line, an absolute
// path optionally followed by parameters, in the order they must be loaded
// (dependencies first). Blank lines and lines starting with # are ignored.
func ParseModuleList(r io.Reader) ([]Module, error) {
	var mods []Module
	sc := bufio.NewScanner(io.LimitReader(r, maxModuleList))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p, params, _ := strings.Cut(line, " ")
		if !path.IsAbs(p) || path.Clean(p) != p || strings.ContainsRune(line, 0) {
			return nil, fmt.Errorf("modules line %d: %q is not a clean absolute path", n, p)
		}
		mods = append(mods, Module{Path: p, Params: strings.Join(strings.Fields(params), " ")})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	return mods, nil
}
