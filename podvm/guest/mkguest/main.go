// Command mkguest builds the guest image directory (vmlinuz, initramfs.img,
// manifest.json) from an unpacked Debian kernel package and the agent
// binary. `make guest` runs it; see podvm/guest/guest.mk.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/podvisor/podvisor/podvm/guest"
)

func main() {
	var cfg guest.BuildConfig
	var modules, runtimeRoot, runtimeBinary, runtimePackages string
	flag.StringVar(&cfg.KernelRoot, "kernel-root", "", "root of the unpacked kernel package (holds boot/ and lib/modules/)")
	flag.StringVar(&cfg.KernelVersion, "kernel-version", "", "kernel release, e.g. 6.1.0-56-cloud-amd64")
	flag.StringVar(&cfg.KernelPackage, "kernel-package", "", "Debian package the kernel came from, as name=version")
	flag.StringVar(&cfg.Agent, "agent", "", "static agent binary to install as /init")
	flag.StringVar(&modules, "modules", strings.Join(guest.DefaultModules, ","), "comma-separated modules to install; dependencies are added")
	flag.StringVar(&cfg.OutDir, "out", "", "output directory")
	flag.StringVar(&runtimeRoot, "runtime-root", "", "directory the container runtime's packages are unpacked into (empty: no runtime)")
	flag.StringVar(&runtimeBinary, "runtime-binary", guest.DefaultRuntimeBinary, "the runtime's path inside -runtime-root and the guest")
	flag.StringVar(&runtimePackages, "runtime-packages", "", "comma-separated name=version@sha256 of the runtime's .deb files, for the manifest")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "mkguest: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	cfg.Modules = splitList(modules)
	if runtimeRoot != "" {
		pkgs, err := parsePackages(splitList(runtimePackages))
		if err != nil {
			fmt.Fprintf(os.Stderr, "mkguest: -runtime-packages: %v\n", err)
			os.Exit(2)
		}
		cfg.Runtime = &guest.RuntimeConfig{Root: runtimeRoot, Binary: runtimeBinary, Packages: pkgs}
	}

	m, err := guest.Build(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkguest: %v\n", err)
		os.Exit(1)
	}
	size := func(name string) int64 {
		fi, err := os.Stat(filepath.Join(cfg.OutDir, name))
		if err != nil {
			return -1
		}
		return fi.Size()
	}
	fmt.Printf("guest image %s: kernel %s (%d bytes, sha256 %s)\n", cfg.OutDir, m.Kernel.Version, size(m.Kernel.File), m.Kernel.SHA256)
	fmt.Printf("  initramfs %d bytes, sha256 %s\n", size(m.Initramfs.File), m.Initramfs.SHA256)
	fmt.Printf("  agent sha256 %s\n", m.Agent.SHA256)
	fmt.Printf("  modules in load order: %s\n", strings.Join(m.Modules, " "))
	if m.Runtime != nil {
		fmt.Printf("  runtime %s: %d files\n", m.Runtime.Binary, len(m.Runtime.Files))
		for _, f := range m.Runtime.Files {
			fmt.Printf("    %s sha256 %s\n", f.Path, f.SHA256)
		}
	}
}

// splitList splits a comma-separated flag value, dropping empty items; an
// empty value means no modules at all (not the default list).
func splitList(s string) []string {
	out := []string{}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parsePackages parses name=version@sha256 items.
func parsePackages(items []string) ([]guest.PackageInfo, error) {
	var out []guest.PackageInfo
	for _, it := range items {
		nv, sum, ok := strings.Cut(it, "@")
		name, version, ok2 := strings.Cut(nv, "=")
		if !ok || !ok2 || name == "" || version == "" || sum == "" {
			return nil, fmt.Errorf("%q is not name=version@sha256", it)
		}
		out = append(out, guest.PackageInfo{Name: name, Version: version, SHA256: sum})
	}
	return out, nil
}
