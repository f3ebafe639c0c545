package cri

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
	"github.com/podvisor/podvisor/cri/ocispec"
)

// validateUserns checks a pod's user namespace options: mode NODE (the
// guest's user namespace, the default) without mappings, or POD with one
// UID and one GID range mapping container ID 0, as kubelet sends. The pod's
// containers then run in one user namespace of the guest with those
// mappings (guest IDs). CONTAINER and TARGET are refused, as containerd
// does; so is POD where the host cannot ID-map image layers.
func validateUserns(field string, u *runtime.UserNamespace, supported bool) error {
	switch ocispec.UsernsMode(u) {
	case runtime.NamespaceMode_NODE:
		if len(u.GetUids()) > 0 || len(u.GetGids()) > 0 {
			return invalid(field, "mode NODE takes no uids or gids")
		}
		return nil
	case runtime.NamespaceMode_POD:
	default:
		return invalid(field+".mode", "%s: a pod's user namespace is NODE or POD", u.Mode)
	}
	if !supported {
		return invalid(field+".mode", "POD: user namespaces need ID-mapped mounts, which this host does not support")
	}
	if err := validateIDMappings(field+".uids", u.GetUids()); err != nil {
		return err
	}
	return validateIDMappings(field+".gids", u.GetGids())
}

func validateIDMappings(field string, ms []*runtime.IDMapping) error {
	if len(ms) != 1 {
		return invalid(field, "%d mappings, want exactly one", len(ms))
	}
	m := ms[0]
	switch {
	case m.ContainerId != 0:
		return invalid(field+"[0].container_id", "is %d: container ID 0 must be mapped", m.ContainerId)
	case m.Length == 0:
		return invalid(field+"[0].length", "is 0")
	case m.HostId == 0:
		return invalid(field+"[0].host_id", "is 0: the container's root would be the guest's root")
	case uint64(m.HostId)+uint64(m.Length) >= 1<<32:
		// The kernel refuses ranges that reach (uid_t)-1.
		return invalid(field+"[0]", "host_id %d + length %d overflows 32-bit IDs", m.HostId, m.Length)
	}
	return nil
}

// podUserns returns a pod's user namespace mapping; zero unless mode POD.
func podUserns(cfg *runtime.PodSandboxConfig) IDMapping {
	u := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	if ocispec.UsernsMode(u) != runtime.NamespaceMode_POD || len(u.GetUids()) != 1 || len(u.GetGids()) != 1 {
		return IDMapping{}
	}
	r := func(m *runtime.IDMapping) IDRange {
		return IDRange{ContainerID: m.ContainerId, HostID: m.HostId, Size: m.Length}
	}
	return IDMapping{UID: r(u.Uids[0]), GID: r(u.Gids[0])}
}

// checkContainerUserns requires a container's user namespace options to be
// its pod's, as kubelet sends them and containerd checks: all containers of
// a pod share its user namespace, or none has one. Unset is mode NODE.
func checkContainerUserns(pod *runtime.PodSandboxConfig, c *runtime.ContainerConfig) error {
	const field = "config.linux.security_context.namespace_options.userns_options"
	want := pod.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	got := c.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	wantMode, gotMode := ocispec.UsernsMode(want), ocispec.UsernsMode(got)
	if wantMode == gotMode && (wantMode == runtime.NamespaceMode_NODE ||
		(equalMappings(want.GetUids(), got.GetUids()) && equalMappings(want.GetGids(), got.GetGids()))) {
		return nil
	}
	return fmt.Errorf("%s: mode %s with uids %v, gids %v; the pod's are mode %s with uids %v, gids %v; they must be the same: %w",
		field, gotMode, got.GetUids(), got.GetGids(), wantMode, want.GetUids(), want.GetGids(), errdefs.ErrInvalidArgument)
}

func equalMappings(a, b []*runtime.IDMapping) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
