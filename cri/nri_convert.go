package cri

import (
	"encoding/json"
	"time"

	nri "github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/ocispec"
	"github.com/podvisor/podvisor/cri/store/container"
	"github.com/podvisor/podvisor/cri/store/sandbox"
)

// What plugins see of pods and containers. Cgroup paths and pids are the
// guest's: that is where the containers run, and the host has no cgroup
// or process of a container for a plugin to act on. A pod has no pid: no
// host process is its infrastructure (the VMM is not a container).

// nriPod maps a stored sandbox.
func nriPod(sb sandbox.Sandbox) *nri.PodSandbox {
	return nriPodFrom(sb.ID, sb.Metadata)
}

// nriPodFrom maps a sandbox's metadata, stored or about to be.
func nriPodFrom(id string, m sandbox.Metadata) *nri.PodSandbox {
	cfg := m.Config
	pod := &nri.PodSandbox{
		Id:             id,
		Name:           cfg.GetMetadata().GetName(),
		Uid:            cfg.GetMetadata().GetUid(),
		Namespace:      cfg.GetMetadata().GetNamespace(),
		Labels:         cfg.GetLabels(),
		Annotations:    cfg.GetAnnotations(),
		RuntimeHandler: m.RuntimeHandler,
		Ips:            m.IPs,
		Linux: &nri.LinuxPodSandbox{
			CgroupParent: cfg.GetLinux().GetCgroupParent(),
			CgroupsPath:  guestCgroupParent,
			PodOverhead:  nriResources(cfg.GetLinux().GetOverhead()),
			PodResources: nriResources(cfg.GetLinux().GetResources()),
			Resources:    nriResources(cfg.GetLinux().GetResources()),
		},
	}
	if m.NetNSPath != "" {
		pod.Linux.Namespaces = []*nri.LinuxNamespace{{Type: string(specs.NetworkNamespace), Path: m.NetNSPath}}
	}
	return pod
}

// nriContainer maps a stored container.
func nriContainer(c container.Container) *nri.Container {
	var spec *specs.Spec
	if len(c.Metadata.SpecJSON) > 0 {
		spec = &specs.Spec{}
		if json.Unmarshal(c.Metadata.SpecJSON, spec) != nil {
			spec = nil
		}
	}
	ctr := nriContainerFrom(c.ID, c.Metadata, spec)
	st := c.Status
	ctr.State = nriState(st.State)
	ctr.Pid = uint32(max(st.Pid, 0))
	ctr.StartedAt = unixNanos(st.StartedAt)
	ctr.FinishedAt = unixNanos(st.FinishedAt)
	ctr.ExitCode = st.ExitCode
	ctr.StatusReason = st.Reason
	ctr.StatusMessage = st.Message
	if st.Resources != nil && ctr.Linux != nil {
		ctr.Linux.Resources = nriResources(st.Resources)
	}
	return ctr
}

// nriContainerFrom maps a container's metadata and OCI spec (nil if
// unknown), before it is created or from the store.
func nriContainerFrom(id string, m container.Metadata, spec *specs.Spec) *nri.Container {
	cfg := m.Config
	ctr := &nri.Container{
		Id:           id,
		PodSandboxId: m.SandboxID,
		Name:         cfg.GetMetadata().GetName(),
		Labels:       cfg.GetLabels(),
		Annotations:  cfg.GetAnnotations(),
		CreatedAt:    unixNanos(m.CreatedAt),
		Image:        &api.Image{Name: m.ImageRef},
	}
	if spec == nil {
		return ctr
	}
	if len(spec.Annotations) > 0 {
		ctr.Annotations = spec.Annotations
	}
	ctr.Mounts = api.FromOCIMounts(spec.Mounts)
	if p := spec.Process; p != nil {
		ctr.Args = p.Args
		ctr.Env = p.Env
		ctr.User = &nri.User{Uid: p.User.UID, Gid: p.User.GID, AdditionalGids: p.User.AdditionalGids}
		for _, r := range p.Rlimits {
			ctr.Rlimits = append(ctr.Rlimits, &nri.POSIXRlimit{Type: r.Type, Hard: r.Hard, Soft: r.Soft})
		}
	}
	if l := spec.Linux; l != nil {
		ctr.Linux = &nri.LinuxContainer{
			Resources:   api.FromOCILinuxResources(l.Resources, nil),
			CgroupsPath: l.CgroupsPath,
			Sysctl:      l.Sysctl,
		}
		for _, ns := range l.Namespaces {
			ctr.Linux.Namespaces = append(ctr.Linux.Namespaces, &nri.LinuxNamespace{Type: string(ns.Type), Path: ns.Path})
		}
		if p := spec.Process; p != nil && p.OOMScoreAdj != nil {
			ctr.Linux.OomScoreAdj = api.Int(p.OOMScoreAdj)
		}
	}
	return ctr
}

// nriResources maps CRI resources as the container's OCI spec gets them.
func nriResources(r *runtime.LinuxContainerResources) *nri.LinuxResources {
	if r == nil {
		return nil
	}
	o, err := ocispec.Resources(r)
	if err != nil {
		return nil
	}
	return api.FromOCILinuxResources(o, nil)
}

func nriState(s container.State) nri.ContainerState {
	switch s {
	case container.StateCreated:
		return api.ContainerState_CONTAINER_CREATED
	case container.StateRunning:
		return api.ContainerState_CONTAINER_RUNNING
	case container.StateExited:
		return api.ContainerState_CONTAINER_STOPPED
	}
	return api.ContainerState_CONTAINER_UNKNOWN
}

func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
