package ocispec

import (
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// guestSysfs replaces the sysfs mount of a container in a pod user
// namespace: sysfs can only be mounted by the owner of the network
// namespace, and the pod's network namespace is the guest's, owned by the
// guest's user namespace. A recursively read-only bind of the guest's /sys
// shows what a sysfs mount would (the same network namespace), and no more
// writable than the default read-only sysfs.
var guestSysfs = specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "rro"}}

// applyUserns puts a container of a pod with a user namespace (mode POD;
// Namespaces already joins it) under the pod's mappings. runc needs them
// to join the namespace: it computes the container root's guest IDs from
// them. The IDs are guest IDs; the VM stays the boundary, the user
// namespace adds the in-guest layer kubelet asks for.
func applyUserns(s *specs.Spec, u *runtime.UserNamespace) {
	if UsernsMode(u) != runtime.NamespaceMode_POD {
		return
	}
	s.Linux.UIDMappings = idMappings(u.GetUids())
	s.Linux.GIDMappings = idMappings(u.GetGids())
	var out []specs.Mount
	for _, m := range s.Mounts {
		switch {
		case m.Type == "sysfs":
			m = guestSysfs
			m.Options = slices.Clone(guestSysfs.Options)
		case m.Destination == "/sys/fs/cgroup" && (m.Type == "cgroup2" || m.Type == "cgroup"):
			// The guest's /sys brings the guest's cgroup2 mount at
			// /sys/fs/cgroup; the same filesystem cannot be mounted on
			// its own root (EBUSY), so cover it first.
			out = append(out, cgroupCover)
		}
		out = append(out, m)
	}
	s.Mounts = out
}

// cgroupCover hides the guest's cgroup2 mount under the bound /sys before
// the container's own (its cgroup namespace's) is mounted there.
var cgroupCover = specs.Mount{Destination: "/sys/fs/cgroup", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "noexec", "nodev", "mode=755", "size=4k"}}

// UsernsMode is the mode of userns_options: unset is NODE (the enum's
// zero value is POD, so an absent message must not be read as one).
func UsernsMode(u *runtime.UserNamespace) runtime.NamespaceMode {
	if u == nil {
		return runtime.NamespaceMode_NODE
	}
	return u.Mode
}

func idMappings(ms []*runtime.IDMapping) []specs.LinuxIDMapping {
	out := make([]specs.LinuxIDMapping, 0, len(ms))
	for _, m := range ms {
		out = append(out, specs.LinuxIDMapping{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()})
	}
	return out
}
