package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/cri"
	"github.com/podvisor/podvisor/cri/errdefs"
	"github.com/podvisor/podvisor/podvm"
)

// vmAdapter serves cri.VMRuntime from podvm. Each pod gets a shared
// directory under podsDir (runtime state: it holds only mounts); container
// upper directories live under upperRoot (persistent, next to the images
// they overlay).
type vmAdapter struct {
	m         *podvm.Manager
	podsDir   string
	upperRoot string
}

var _ cri.VMRuntime = (*vmAdapter)(nil)

// vmErr maps podvm's kinds and the agent's status codes to CRI's kinds.
func vmErr(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, podvm.ErrGone):
		return fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	case errors.Is(err, podvm.ErrInvalidSpec), errors.Is(err, podvm.ErrInvalidContainer):
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	}
	// The agent's errors arrive as gRPC statuses, wrapped by podvm.
	switch status.Code(err) {
	case codes.NotFound:
		return fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	case codes.InvalidArgument:
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	case codes.AlreadyExists:
		return fmt.Errorf("%w: %w", errdefs.ErrAlreadyExists, err)
	case codes.FailedPrecondition:
		return fmt.Errorf("%w: %w", errdefs.ErrFailedPrecondition, err)
	case codes.ResourceExhausted:
		return fmt.Errorf("%w: %w", errdefs.ErrResourceExhausted, err)
	case codes.Unavailable, codes.Canceled:
		return fmt.Errorf("%w: %w", errdefs.ErrUnavailable, err)
	}
	return err
}

// vmIDLength is how much of a sandbox ID names its VM. The VM's sockets
// live under <state>-vms/<vm id>/, and a unix socket path is limited to 107
// bytes: a full 64-character ID would leave too little for the state
// directory. 64 bits of a random ID cannot collide among one host's pods;
// if they ever did, the second boot would fail rather than share a VM.
const vmIDLength = 16

func vmID(sandboxID string) string {
	if len(sandboxID) > vmIDLength {
		return sandboxID[:vmIDLength]
	}
	return sandboxID
}

func (a *vmAdapter) sharedDir(id string) string { return filepath.Join(a.podsDir, id, "shared") }

func (a *vmAdapter) Boot(ctx context.Context, spec cri.VMSpec) (_ cri.PodVM, retErr error) {
	pn, ok := spec.Network.(podNetwork)
	if !ok || pn.PodNetwork == nil {
		return nil, fmt.Errorf("%w: sandbox %s has no pod network", errdefs.ErrFailedPrecondition, spec.SandboxID)
	}
	// The VMM holds its own copies of the tap descriptors once launched.
	defer pn.CloseTaps()
	shared := a.sharedDir(spec.SandboxID)
	if err := os.MkdirAll(shared, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			os.RemoveAll(filepath.Dir(shared))
		}
	}()
	vm, err := a.m.Boot(ctx, podvm.Spec{
		ID: vmID(spec.SandboxID), VCPUs: spec.VCPUs, MemoryMiB: spec.MemoryMiB,
		SharedDir: shared, NICs: pn.NICs, NetNSPath: pn.PodNetwork.NetNSPath,
	})
	if err != nil {
		return nil, vmErr(err)
	}
	p := &podVM{a: a, vm: vm, sandboxID: spec.SandboxID}
	defer func() {
		if retErr != nil {
			vm.Stop(context.WithoutCancel(ctx))
		}
	}()
	if err := vm.ConfigureNetwork(ctx, guestNetwork(spec, pn)); err != nil {
		return nil, vmErr(err)
	}
	return p, nil
}

// guestNetwork is what the agent applies: the CNI result's interfaces and
// routes, the pod's DNS (over the CNI's), hostname and sysctls.
func guestNetwork(spec cri.VMSpec, pn podNetwork) podvm.NetworkConfig {
	g := pn.Guest
	cfg := podvm.NetworkConfig{Hostname: spec.Hostname, Sysctls: spec.Sysctls}
	for _, i := range g.Interfaces {
		ni := podvm.NetworkInterface{MAC: i.MAC.String(), Name: i.Name, MTU: uint32(i.MTU)}
		for _, a := range i.Addresses {
			ni.Addresses = append(ni.Addresses, a.String())
		}
		cfg.Interfaces = append(cfg.Interfaces, ni)
	}
	for _, r := range g.Routes {
		nr := podvm.NetworkRoute{InterfaceMAC: r.InterfaceMAC.String()}
		if r.Dst.IsValid() && r.Dst.Bits() > 0 {
			nr.Destination = r.Dst.String()
		}
		if r.Gateway.IsValid() {
			nr.Gateway = r.Gateway.String()
		}
		cfg.Routes = append(cfg.Routes, nr)
	}
	cfg.DNS = podvm.DNSConfig{Servers: g.DNS.Servers, Searches: g.DNS.Searches, Options: g.DNS.Options}
	if spec.DNS != nil {
		cfg.DNS = podvm.DNSConfig{Servers: spec.DNS.Servers, Searches: spec.DNS.Searches, Options: spec.DNS.Options}
	}
	return cfg
}

func (a *vmAdapter) Reattach(ctx context.Context, sandboxID string) (cri.PodVM, error) {
	vm, err := a.m.Reattach(ctx, vmID(sandboxID))
	if err != nil {
		if errors.Is(err, podvm.ErrGone) {
			a.m.Cleanup(ctx, vmID(sandboxID))
			os.RemoveAll(filepath.Join(a.podsDir, sandboxID))
		}
		return nil, vmErr(err)
	}
	return &podVM{a: a, vm: vm, sandboxID: sandboxID}, nil
}

// RemoveOthers stops and removes the VMs and pod directories of sandboxes
// not in keep. A VM directory a crash left before the boot recorded its
// state is not found here.
func (a *vmAdapter) RemoveOthers(ctx context.Context, keep []string) error {
	keepVM := map[string]bool{}
	keepPod := map[string]bool{}
	for _, id := range keep {
		keepVM[vmID(id)], keepPod[id] = true, true
	}
	ids, err := a.m.List()
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if keepVM[id] {
			continue
		}
		klog.InfoS("Removing a pod VM no sandbox owns", "vm", id)
		errs = append(errs, a.m.Cleanup(ctx, id))
	}
	pods, _ := os.ReadDir(a.podsDir)
	for _, p := range pods {
		if keepPod[p.Name()] {
			continue
		}
		dir := filepath.Join(a.podsDir, p.Name())
		klog.InfoS("Removing a pod directory no sandbox owns", "dir", dir)
		errs = append(errs, podvm.UnmountBelow(dir), os.RemoveAll(dir))
	}
	return errors.Join(errs...)
}

// podVM serves cri.PodVM from a *podvm.VM.
type podVM struct {
	a         *vmAdapter
	vm        *podvm.VM
	sandboxID string
}

var _ cri.PodVM = (*podVM)(nil)

func (p *podVM) Done() <-chan struct{} { return p.vm.Done() }

// Stop releases every container's files, stops the VM and removes the
// pod's shared directory.
func (p *podVM) Stop(ctx context.Context) error {
	var errs []error
	ctrs, _ := os.ReadDir(filepath.Join(p.vm.SharedDir(), "containers"))
	for _, c := range ctrs {
		errs = append(errs, p.vm.ReleaseContainerFiles(c.Name(), p.a.upperRoot))
	}
	errs = append(errs, p.vm.Stop(ctx))
	if err := errors.Join(errs...); err != nil {
		return vmErr(err)
	}
	return os.RemoveAll(filepath.Join(p.a.podsDir, p.sandboxID))
}

func (p *podVM) PodPIDNamespace(ctx context.Context, userns cri.IDMapping) (int, error) {
	pid, err := p.vm.PodPIDNamespace(ctx, podvmIDMapping(userns))
	return pid, vmErr(err)
}

func podvmIDMapping(m cri.IDMapping) podvm.IDMapping {
	return podvm.IDMapping{UID: podvm.IDRange(m.UID), GID: podvm.IDRange(m.GID)}
}

func (p *podVM) DialPort(ctx context.Context, port int32) (io.ReadWriteCloser, error) {
	c, err := p.vm.DialPort(ctx, port)
	return c, vmErr(err)
}

// PrepareRootfs mounts the overlay; layerDirs come base first, overlayfs
// wants the topmost first. A read-only rootfs is enforced by the OCI spec.
func (p *podVM) PrepareRootfs(ctx context.Context, containerID string, layerDirs []string, opts cri.RootfsOptions) (string, error) {
	lower := make([]string, len(layerDirs))
	for i, d := range layerDirs {
		lower[len(layerDirs)-1-i] = d
	}
	g, err := p.vm.PrepareRootfs(ctx, containerID, lower, p.a.upperRoot, podvmIDMapping(opts.Userns))
	return g, vmErr(err)
}

func (p *podVM) ShareHostPath(_ context.Context, containerID, hostPath string, readOnly, recursive bool) (string, []string, error) {
	subs, err := podvm.Submounts(hostPath)
	if err != nil {
		return "", nil, fmt.Errorf("submounts of %s: %w", hostPath, err)
	}
	var b [8]byte
	rand.Read(b[:])
	g, err := p.vm.ShareHostPath(containerID, "m-"+hex.EncodeToString(b[:]), hostPath, readOnly, recursive)
	return g, subs, vmErr(err)
}

// ShareImage mounts an image volume; like PrepareRootfs, overlayfs wants
// the topmost layer first.
func (p *podVM) ShareImage(_ context.Context, containerID string, layerDirs []string, subPath string) (string, error) {
	lower := make([]string, len(layerDirs))
	for i, d := range layerDirs {
		lower[len(layerDirs)-1-i] = d
	}
	var b [8]byte
	rand.Read(b[:])
	g, err := p.vm.ShareImage(containerID, "i-"+hex.EncodeToString(b[:]), lower, subPath)
	return g, vmErr(err)
}

func (p *podVM) ReleaseContainerFiles(_ context.Context, containerID string) error {
	return vmErr(p.vm.ReleaseContainerFiles(containerID, p.a.upperRoot))
}

func (p *podVM) CreateContainer(ctx context.Context, spec cri.ContainerSpec) (cri.Process, error) {
	terminal := spec.Spec != nil && spec.Spec.Process != nil && spec.Spec.Process.Terminal
	pr, err := p.vm.CreateContainer(ctx, podvm.ContainerSpec{
		ID: spec.ID, Spec: spec.Spec, Terminal: terminal,
		Stdin: spec.Stdin, Stdout: spec.Stdout, Stderr: spec.Stderr && !terminal,
	})
	if err != nil {
		return nil, vmErr(err)
	}
	return process{pr}, nil
}

func (p *podVM) StartContainer(ctx context.Context, containerID string) error {
	return vmErr(p.vm.StartContainer(ctx, containerID))
}

// Process re-attaches to a container's init process after a restart. Its
// stdio streams come back with it, output written while no daemon ran
// first, so that the container's log goes on where it stopped.
func (p *podVM) Process(ctx context.Context, containerID string) (cri.Process, error) {
	pr, err := p.vm.Process(ctx, containerID)
	if err != nil {
		return nil, vmErr(err)
	}
	return process{pr}, nil
}

func (p *podVM) Exec(ctx context.Context, containerID string, spec cri.ExecSpec) (cri.Process, error) {
	terminal := spec.Process != nil && spec.Process.Terminal
	pr, err := p.vm.Exec(ctx, containerID, podvm.ExecSpec{
		ID: spec.ID, Process: spec.Process, Stdin: spec.Stdin, Stdout: spec.Stdout, Stderr: spec.Stderr && !terminal,
	})
	if err != nil {
		return nil, vmErr(err)
	}
	return process{pr}, nil
}

func (p *podVM) DeleteContainer(ctx context.Context, containerID string) error {
	return vmErr(p.vm.DeleteContainer(ctx, containerID))
}

func (p *podVM) UpdateContainerResources(ctx context.Context, containerID string, res *specs.LinuxResources) error {
	return vmErr(p.vm.UpdateContainerResources(ctx, containerID, res))
}

func (p *podVM) ContainerStats(ctx context.Context, containerID string) (cri.ContainerStats, error) {
	s, err := p.vm.ContainerStats(ctx, containerID)
	if err != nil {
		return cri.ContainerStats{}, vmErr(err)
	}
	return criContainerStats(s, dirBytes(filepath.Join(p.a.upperRoot, containerID, "upper"))), nil
}

func criContainerStats(s podvm.ContainerStats, writableLayerBytes uint64) cri.ContainerStats {
	out := cri.ContainerStats{
		Timestamp: s.Timestamp, CPUUsage: s.CPUUsage, MemoryUsage: s.MemoryUsage,
		MemoryWorkingSet: s.MemoryWorkingSet, MemoryRSS: s.MemoryAnon, PIDs: s.PIDs,
		WritableLayerBytes: writableLayerBytes,
	}
	// podvm sets a group only when the agent read all of it, as cri
	// expects.
	if c := s.CPU; c != nil {
		out.CPU = &cri.CPUStats{
			User: c.User, System: c.System,
			Periods: c.Periods, ThrottledPeriods: c.ThrottledPeriods, ThrottledTime: c.ThrottledTime,
		}
	}
	if m := s.Memory; m != nil {
		out.Memory = &cri.MemoryStats{
			Cache: m.Cache, Kernel: m.Kernel, MappedFile: m.MappedFile, Swap: m.Swap, MaxUsage: m.Peak,
			LimitHits: m.LimitHits, PageFaults: m.PageFaults, MajorPageFaults: m.MajorPageFaults, OOMEvents: m.OOMKills,
		}
	}
	if ps := s.Processes; ps != nil {
		out.Processes = &cri.ProcessStats{
			Threads: ps.Threads, ThreadsMax: ps.ThreadsMax, FileDescriptors: ps.FileDescriptors, Sockets: ps.Sockets,
		}
	}
	return out
}

// dirBytes sums the sizes of the regular files under dir (the writable
// layer lives on the host, so its usage is measured there).
func dirBytes(dir string) uint64 {
	var n uint64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += uint64(fi.Size())
			}
		}
		return nil
	})
	return n
}

// process serves cri.Process from a *podvm.Process.
type process struct{ p *podvm.Process }

func (p process) PID() int { return p.p.PID() }

func (p process) Stdin() io.WriteCloser {
	if p.p.Stdin == nil {
		return nil
	}
	return p.p.Stdin
}

func (p process) Stdout() io.ReadCloser {
	if p.p.Stdout == nil {
		return nil
	}
	return p.p.Stdout
}

func (p process) Stderr() io.ReadCloser {
	if p.p.Stderr == nil {
		return nil
	}
	return p.p.Stderr
}

func (p process) Wait(ctx context.Context) (cri.ExitStatus, error) {
	st, err := p.p.Wait(ctx)
	if err != nil {
		return cri.ExitStatus{}, vmErr(err)
	}
	return cri.ExitStatus{Code: st.Code, Signal: st.Signal, Started: st.Started, Finished: st.Finished, OOMKill: st.OOMKilled}, nil
}

func (p process) Signal(ctx context.Context, sig syscall.Signal) error {
	return vmErr(p.p.Signal(ctx, sig))
}

func (p process) Resize(ctx context.Context, rows, cols uint16) error {
	return vmErr(p.p.Resize(ctx, uint32(rows), uint32(cols)))
}

func (p process) Remove(ctx context.Context) error { return vmErr(p.p.Remove(ctx)) }
