package cri

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	nri "github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
	"github.com/podvisor/podvisor/cri/ocispec"
)

// A plugin's ContainerAdjustment is applied to the OCI spec the guest
// runs, as far as a pod VM can honour it: annotations, environment,
// arguments, rlimits, OOM score, cgroup CPU/memory/pids limits and
// sysctls act inside the guest, and host directories reach it through the
// pod's shared filesystem like any CRI mount. What would act on the host
// or step outside the VM's boundary (OCI hooks run by the host's runtime,
// host devices, namespaces, seccomp and scheduling policy, host cgroup
// paths) is refused: CreateContainer fails naming the adjustment, as
// nothing may silently weaken or ignore what a plugin asked for.

// refuseNRI is the error for an adjustment a pod VM cannot honour.
func refuseNRI(what, why string) error {
	return fmt.Errorf("NRI adjustment %s cannot be applied in a pod VM (%s): %w", what, why, errdefs.ErrFailedPrecondition)
}

// checkNRIAdjustment refuses the adjustments a pod VM cannot honour,
// before anything is applied.
func checkNRIAdjustment(a *nri.ContainerAdjustment) error {
	var errs []error
	if h := a.GetHooks(); h != nil && len(h.Prestart)+len(h.CreateRuntime)+len(h.CreateContainer)+len(h.StartContainer)+len(h.Poststart)+len(h.Poststop) > 0 {
		errs = append(errs, refuseNRI("hooks", "OCI hooks would run on the host"))
	}
	if len(a.GetCDIDevices()) > 0 {
		errs = append(errs, refuseNRI("CDI devices", "host devices are not passed to pod VMs"))
	}
	l := a.GetLinux()
	if l == nil {
		return errors.Join(errs...)
	}
	if len(l.Devices) > 0 {
		errs = append(errs, refuseNRI("linux.devices", "host devices are not passed to pod VMs"))
	}
	if len(l.Namespaces) > 0 {
		errs = append(errs, refuseNRI("linux.namespaces", "namespaces are the pod VM's"))
	}
	if l.SeccompPolicy != nil {
		errs = append(errs, refuseNRI("linux.seccomp_policy", "seccomp policy is set by the pod's security context"))
	}
	if l.CgroupsPath != "" {
		errs = append(errs, refuseNRI("linux.cgroups_path", "cgroups are the guest's"))
	}
	if len(l.NetDevices) > 0 {
		errs = append(errs, refuseNRI("linux.net_devices", "host network devices are not moved into pod VMs"))
	}
	if l.IoPriority != nil {
		errs = append(errs, refuseNRI("linux.io_priority", "I/O priority is not supported"))
	}
	if l.Scheduler != nil {
		errs = append(errs, refuseNRI("linux.scheduler", "scheduling policy is not supported"))
	}
	// The library hands an empty RDT adjustment (or a removal, a no-op
	// here) when no plugin set one.
	if r := l.Rdt; r != nil && (r.ClosId != nil || r.Schemata != nil || r.EnableMonitoring != nil) {
		errs = append(errs, refuseNRI("linux.rdt", "RDT is a host resource"))
	}
	if l.MemoryPolicy != nil {
		errs = append(errs, refuseNRI("linux.memory_policy", "NUMA memory policy is not supported"))
	}
	errs = append(errs, checkNRIResources("linux.resources", l.Resources))
	return errors.Join(errs...)
}

// checkNRIResources refuses the resources a guest cgroup cannot take.
func checkNRIResources(field string, r *nri.LinuxResources) error {
	if r == nil {
		return nil
	}
	var errs []error
	if len(r.HugepageLimits) > 0 {
		errs = append(errs, refuseNRI(field+".hugepage_limits", "pod VMs have no huge pages"))
	}
	if r.BlockioClass != nil || r.RdtClass != nil {
		errs = append(errs, refuseNRI(field+".blockio_class/rdt_class", "classes are host resources"))
	}
	if len(r.Devices) > 0 {
		errs = append(errs, refuseNRI(field+".devices", "host devices are not passed to pod VMs"))
	}
	if m := r.Memory; m != nil && (m.Kernel != nil || m.KernelTcp != nil || m.UseHierarchy != nil) {
		errs = append(errs, refuseNRI(field+".memory.kernel/kernel_tcp/use_hierarchy", "not in the guest's cgroup v2"))
	}
	if c := r.Cpu; c != nil && (c.RealtimeRuntime != nil || c.RealtimePeriod != nil) {
		errs = append(errs, refuseNRI(field+".cpu.realtime_*", "real-time scheduling is not supported"))
	}
	return errors.Join(errs...)
}

// checkNRIUpdate refuses what a container update cannot carry: updates
// take UpdateContainerResources' path, whose CRI resources have no pids
// limit, memory reservation, swappiness or OOM killer switch.
func checkNRIUpdate(r *nri.LinuxResources) error {
	if err := checkNRIResources("update", r); err != nil {
		return err
	}
	if r == nil {
		return nil
	}
	var errs []error
	if p := r.Pids; p != nil && p.Limit != 0 {
		errs = append(errs, refuseNRI("update.pids", "not updatable after creation"))
	}
	if m := r.Memory; m != nil && (m.Reservation != nil || m.Swappiness != nil || m.DisableOomKiller != nil) {
		errs = append(errs, refuseNRI("update.memory.reservation/swappiness/disable_oom_killer", "not updatable after creation"))
	}
	return errors.Join(errs...)
}

// applyNRIAdjustment applies a to the container's spec; mounts of host
// paths are shared with the guest through files.
func applyNRIAdjustment(ctx context.Context, files GuestFiles, id string, spec *specs.Spec, a *nri.ContainerAdjustment) error {
	if a == nil {
		return nil
	}
	if err := checkNRIAdjustment(a); err != nil {
		return err
	}
	for k, v := range a.Annotations {
		if key, del := api.IsMarkedForRemoval(k); del {
			delete(spec.Annotations, key)
			continue
		}
		if spec.Annotations == nil {
			spec.Annotations = map[string]string{}
		}
		spec.Annotations[k] = v
	}
	if err := applyNRIMounts(ctx, files, id, spec, a.Mounts); err != nil {
		return err
	}
	if spec.Process == nil {
		spec.Process = &specs.Process{}
	}
	p := spec.Process
	for _, e := range a.Env {
		key, del := e.IsMarkedForRemoval()
		p.Env = slices.DeleteFunc(p.Env, func(kv string) bool { k, _, _ := strings.Cut(kv, "="); return k == key })
		if !del {
			p.Env = append(p.Env, e.Key+"="+e.Value)
		}
	}
	if len(a.Args) > 0 {
		args := a.Args
		if args[0] == "" { // UpdateArgs: replace whatever was set
			args = args[1:]
		}
		p.Args = slices.Clone(args)
	}
	for _, r := range a.Rlimits {
		p.Rlimits = slices.DeleteFunc(p.Rlimits, func(o specs.POSIXRlimit) bool { return o.Type == r.Type })
		p.Rlimits = append(p.Rlimits, specs.POSIXRlimit{Type: r.Type, Hard: r.Hard, Soft: r.Soft})
	}
	l := a.Linux
	if l == nil {
		return nil
	}
	if v := l.OomScoreAdj.Get(); v != nil {
		p.OOMScoreAdj = v
	}
	if spec.Linux == nil {
		spec.Linux = &specs.Linux{}
	}
	for k, v := range l.Sysctl {
		if key, del := api.IsMarkedForRemoval(k); del {
			delete(spec.Linux.Sysctl, key)
			continue
		}
		if spec.Linux.Sysctl == nil {
			spec.Linux.Sysctl = map[string]string{}
		}
		spec.Linux.Sysctl[k] = v
	}
	if l.Resources != nil {
		if spec.Linux.Resources == nil {
			spec.Linux.Resources = &specs.LinuxResources{}
		}
		overlayOCIResources(spec.Linux.Resources, l.Resources)
	}
	return nil
}

// applyNRIMounts removes the mounts marked for removal and adds the
// others: bind mounts of host paths through the pod's shared filesystem,
// tmpfs as asked (it lives in the guest); any other type is refused.
func applyNRIMounts(ctx context.Context, files GuestFiles, id string, spec *specs.Spec, ms []*nri.Mount) error {
	for _, m := range ms {
		dest, del := m.IsMarkedForRemoval()
		dest = path.Clean(dest)
		spec.Mounts = slices.DeleteFunc(spec.Mounts, func(o specs.Mount) bool { return path.Clean(o.Destination) == dest })
		if del {
			continue
		}
		field := fmt.Sprintf("mount %q", m.Destination)
		if !path.IsAbs(dest) {
			return fmt.Errorf("NRI adjustment %s: destination is not absolute: %w", field, errdefs.ErrInvalidArgument)
		}
		bind := m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
		switch {
		case bind:
			if !filepath.IsAbs(m.Source) {
				return fmt.Errorf("NRI adjustment %s: source %q is not absolute: %w", field, m.Source, errdefs.ErrInvalidArgument)
			}
			host, err := filepath.EvalSymlinks(m.Source)
			if err != nil {
				return fmt.Errorf("NRI adjustment %s: source: %w: %w", field, err, errdefs.ErrInvalidArgument)
			}
			// Recursive read-only is read-only on the host side too, for
			// the whole tree, like a CRI mount's.
			rro := slices.Contains(m.Options, "rro")
			ro := rro || slices.Contains(m.Options, "ro")
			guest, subs, err := files.ShareHostPath(ctx, id, host, ro, rro)
			if err != nil {
				return fmt.Errorf("NRI adjustment %s: share %q with the pod VM: %w", field, host, err)
			}
			opts := []string{"rbind", "rprivate", "rw"}
			switch {
			case rro:
				opts[2] = "rro"
			case ro:
				opts[2] = "ro"
			}
			for _, o := range m.Options {
				if o == "nosuid" || o == "nodev" || o == "noexec" {
					opts = append(opts, o)
				}
			}
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: dest, Type: "bind", Source: guest, Options: opts})
			if ro && !rro {
				// Read-only, not recursively: submounts keep their own
				// flags (see shareMounts).
				for _, rel := range subs {
					spec.Mounts = append(spec.Mounts, specs.Mount{Destination: path.Join(dest, rel), Type: "bind",
						Source: path.Join(guest, rel), Options: []string{"rbind", "rprivate", "rw"}})
				}
			}
		case m.Type == "tmpfs":
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: dest, Type: "tmpfs", Source: "tmpfs", Options: slices.Clone(m.Options)})
		default:
			return refuseNRI(field, fmt.Sprintf("mount type %q: only host directories (bind) and tmpfs reach a pod VM", m.Type))
		}
	}
	// A parent is mounted before its children, as ocispec.Mounts orders.
	sort.SliceStable(spec.Mounts, func(i, j int) bool { return depth(spec.Mounts[i].Destination) < depth(spec.Mounts[j].Destination) })
	return nil
}

func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(path.Clean(p), "/")
}

// overlayOCIResources sets in dst what r sets (checkNRIResources refused
// what a guest cannot take). CPU shares become cgroup v2's cpu.weight, as
// for CRI resources.
func overlayOCIResources(dst *specs.LinuxResources, r *nri.LinuxResources) {
	if m := r.Memory; m != nil {
		if dst.Memory == nil {
			dst.Memory = &specs.LinuxMemory{}
		}
		setIf(&dst.Memory.Limit, m.Limit.Get())
		setIf(&dst.Memory.Reservation, m.Reservation.Get())
		setIf(&dst.Memory.Swap, m.Swap.Get())
		setIf(&dst.Memory.Swappiness, m.Swappiness.Get())
		setIf(&dst.Memory.DisableOOMKiller, m.DisableOomKiller.Get())
	}
	if c := r.Cpu; c != nil {
		if dst.CPU == nil {
			dst.CPU = &specs.LinuxCPU{}
		}
		setIf(&dst.CPU.Quota, c.Quota.Get())
		setIf(&dst.CPU.Period, c.Period.Get())
		if c.Cpus != "" {
			dst.CPU.Cpus = c.Cpus
		}
		if c.Mems != "" {
			dst.CPU.Mems = c.Mems
		}
		if v := c.Shares.Get(); v != nil {
			if w := ocispec.CPUWeight(*v); w > 0 {
				setUnified(dst, "cpu.weight", fmt.Sprint(w))
			}
		}
	}
	if p := r.Pids; p != nil && p.Limit > 0 {
		l := p.Limit
		dst.Pids = &specs.LinuxPids{Limit: &l}
	}
	for k, v := range r.Unified {
		setUnified(dst, k, v)
	}
}

func setUnified(dst *specs.LinuxResources, k, v string) {
	if dst.Unified == nil {
		dst.Unified = map[string]string{}
	}
	dst.Unified[k] = v
}

func setIf[T any](dst **T, v *T) {
	if v != nil {
		x := *v
		*dst = &x
	}
}

// overlayCRIResources returns base with what r sets: the CRI form of a
// plugin's update, which then takes UpdateContainerResources' path.
func overlayCRIResources(base *runtime.LinuxContainerResources, r *nri.LinuxResources) *runtime.LinuxContainerResources {
	out := &runtime.LinuxContainerResources{}
	if base != nil {
		out = proto.Clone(base).(*runtime.LinuxContainerResources)
	}
	if r == nil {
		return out
	}
	if m := r.Memory; m != nil {
		if v := m.Limit.Get(); v != nil {
			out.MemoryLimitInBytes = *v
		}
		if v := m.Swap.Get(); v != nil {
			out.MemorySwapLimitInBytes = *v
		}
	}
	if c := r.Cpu; c != nil {
		if v := c.Shares.Get(); v != nil {
			out.CpuShares = int64(*v)
		}
		if v := c.Quota.Get(); v != nil {
			out.CpuQuota = *v
		}
		if v := c.Period.Get(); v != nil {
			out.CpuPeriod = int64(*v)
		}
		if c.Cpus != "" {
			out.CpusetCpus = c.Cpus
		}
		if c.Mems != "" {
			out.CpusetMems = c.Mems
		}
	}
	if len(r.Unified) > 0 {
		if out.Unified == nil {
			out.Unified = map[string]string{}
		}
		for k, v := range r.Unified {
			out.Unified[k] = v
		}
	}
	return out
}
