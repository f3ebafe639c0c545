package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/cri"
	"github.com/podvisor/podvisor/cri/streaming"
	"github.com/podvisor/podvisor/hypervisor/vmmselect"
	"github.com/podvisor/podvisor/network"
	"github.com/podvisor/podvisor/podvm"
)

// wireBackends builds the adapters from podvisor's packages to the
// interfaces cri needs (cri/backend.go), one adapter file each. The
// returned function closes what they opened; pod VMs keep running.
func wireBackends(ctx context.Context, o Options, cfg cri.Config) (_ cri.Backends, _ func(), retErr error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if retErr != nil {
			closeAll()
		}
	}()

	images, err := newImageAdapter(filepath.Join(o.Root, "images"), cfg)
	if err != nil {
		return cri.Backends{}, nil, fmt.Errorf("image store: %w", err)
	}
	closers = append(closers, func() { images.s.Close() })

	ncfg := network.Default()
	ncfg.StateDir = filepath.Join(o.State, "network")
	ncfg.CacheDir = filepath.Join(o.Root, "cni-cache")
	ncfg.ConfDir = cfg.CNI.ConfDir
	ncfg.BinDirs = cfg.CNI.BinDirs
	nm, err := network.NewManager(ncfg)
	if err != nil {
		return cri.Backends{}, nil, fmt.Errorf("network: %w", err)
	}

	vms, err := newVMAdapter(ctx, o, cfg)
	if err != nil {
		return cri.Backends{}, nil, fmt.Errorf("pod VMs: %w", err)
	}
	return cri.Backends{
		VMs:      vms,
		Images:   images,
		Network:  networkAdapter{nm},
		Logs:     logOpener{},
		Features: hostFeatures(filepath.Join(o.Root, "images"), vms.podsDir),
	}, closeAll, nil
}

// hostFeatures probes what this host supports: pod user namespaces need
// ID-mapped mounts of the image layers under layersDir.
func hostFeatures(layersDir, podsDir string) cri.HostFeatures {
	f := cri.HostFeatures{RootfsDir: podsDir}
	if err := podvm.IDMappedLayersSupported(layersDir); err != nil {
		klog.InfoS("Pod user namespaces disabled: image layers cannot be ID-mapped on this host", "dir", layersDir, "err", err)
		return f
	}
	f.UserNamespaces = true
	return f
}

// newVMAdapter chooses the VMM and prepares pod VM state.
func newVMAdapter(ctx context.Context, o Options, cfg cri.Config) (*vmAdapter, error) {
	guestDir := cfg.PodVM.GuestDir
	choice, err := vmmselect.Choose(ctx, vmmselect.Options{
		Driver:     cfg.PodVM.Driver,
		Kernel:     filepath.Join(guestDir, "vmlinuz"),
		ProbeCache: filepath.Join(o.State, "kvm-probe.json"),
	})
	if err != nil {
		return nil, err
	}
	pc := podvm.Config{
		StateDir:      vmStateDir(o.State),
		GuestDir:      guestDir,
		Driver:        choice.Driver,
		KVM:           choice.KVM,
		VirtiofsdPath: cfg.PodVM.Virtiofsd,
		BootTimeout:   cfg.PodVM.BootTimeout.Std(),
		StopTimeout:   cfg.PodVM.StopTimeout.Std(),
	}
	if name := cfg.PodVM.VMMUser; name != "" {
		uid, gid, err := lookupUser(name)
		if err != nil {
			return nil, err
		}
		pc.VMMUser, pc.VMMGroup = uid, gid
		if choice.KVM {
			// /dev/kvm belongs to group kvm on Debian-like hosts.
			if g, err := user.LookupGroup("kvm"); err == nil {
				n, _ := strconv.Atoi(g.Gid)
				pc.VMMGroups = []uint32{uint32(n)}
			}
		}
	}
	m, err := podvm.NewManager(pc)
	if err != nil {
		return nil, err
	}
	a := &vmAdapter{m: m, podsDir: filepath.Join(o.State, "pods"), upperRoot: filepath.Join(o.Root, "containers")}
	for _, d := range []string{a.podsDir, a.upperRoot} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// vmStateDir is where pod VMs keep their sockets and logs. It sits beside
// the state directory, not in it: the unprivileged VMM account must be able
// to traverse to its VM's directory, while the state directory holding the
// CRI socket stays 0700.
func vmStateDir(state string) string {
	return filepath.Clean(state) + "-vms"
}

func lookupUser(name string) (uint32, uint32, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("VMM account %q: %w", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("VMM account %q: %w", name, err)
	}
	return uint32(uid), uint32(gid), nil
}

// wireStreaming starts the streaming server on cfg.Stream, backed by the
// service, and hands it to svc. It returns a function that stops it.
func wireStreaming(svc *cri.Service, cfg cri.Config) (stop func(), err error) {
	scfg := streaming.DefaultConfig()
	scfg.Address = net.JoinHostPort(cfg.Stream.Address, cfg.Stream.Port)
	scfg.EnableTLS = cfg.Stream.TLS
	if d := cfg.Stream.IdleTimeout.Std(); d > 0 {
		scfg.StreamIdleTimeout = d
	}
	srv, err := streaming.New(scfg, streamBackend{svc})
	if err != nil {
		return nil, err
	}
	if err := srv.Start(); err != nil {
		return nil, err
	}
	svc.SetStreamServer(srv)
	klog.InfoS("Streaming server listening", "url", srv.URL())
	return func() { srv.Stop() }, nil
}
