package agent

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// maxIDMappings bounds the ranges of one user namespace map (the kernel
// takes 340; kubelet sends one).
const maxIDMappings = 5

// idMappings are the UID and GID mappings of a pod's user namespace, in
// guest IDs. The zero value is the guest's own user namespace.
type idMappings struct {
	UIDs, GIDs []specs.LinuxIDMapping
}

func (m idMappings) zero() bool { return len(m.UIDs) == 0 && len(m.GIDs) == 0 }

func (m idMappings) equal(o idMappings) bool {
	return slices.Equal(m.UIDs, o.UIDs) && slices.Equal(m.GIDs, o.GIDs)
}

func (m idMappings) sysProcIDMaps() (uids, gids []syscall.SysProcIDMap) {
	conv := func(ms []specs.LinuxIDMapping) []syscall.SysProcIDMap {
		out := make([]syscall.SysProcIDMap, len(ms))
		for i, x := range ms {
			out[i] = syscall.SysProcIDMap{ContainerID: int(x.ContainerID), HostID: int(x.HostID), Size: int(x.Size)}
		}
		return out
	}
	return conv(m.UIDs), conv(m.GIDs)
}

// requestMappings checks and converts the mappings of a PodPIDNamespace
// request.
func requestMappings(req *agentpb.PodPIDNamespaceRequest) (idMappings, error) {
	conv := func(ms []*agentpb.IDMapping) []specs.LinuxIDMapping {
		var out []specs.LinuxIDMapping
		for _, x := range ms {
			out = append(out, specs.LinuxIDMapping{ContainerID: x.GetContainerId(), HostID: x.GetHostId(), Size: x.GetSize()})
		}
		return out
	}
	m := idMappings{UIDs: conv(req.GetUidMappings()), GIDs: conv(req.GetGidMappings())}
	if m.zero() {
		return m, nil
	}
	if err := validateIDMappings("uid_mappings", m.UIDs); err != nil {
		return idMappings{}, err
	}
	if err := validateIDMappings("gid_mappings", m.GIDs); err != nil {
		return idMappings{}, err
	}
	return m, nil
}

// validateIDMappings checks one map: 1 to maxIDMappings ranges, none
// empty or reaching (uid_t)-1; the kernel checks overlaps when it is
// written.
func validateIDMappings(field string, ms []specs.LinuxIDMapping) error {
	if len(ms) == 0 || len(ms) > maxIDMappings {
		return invalid(field, "%d ranges, want 1-%d", len(ms), maxIDMappings)
	}
	for i, x := range ms {
		end := uint64(1) << 32
		if x.Size == 0 || uint64(x.ContainerID)+uint64(x.Size) >= end || uint64(x.HostID)+uint64(x.Size) >= end {
			return invalid(fmt.Sprintf("%s[%d]", field, i), "range %d %d %d is empty or overflows", x.ContainerID, x.HostID, x.Size)
		}
	}
	return nil
}

// specUserns returns the path of the user namespace a spec joins, "" if it
// stays in the guest's. A container may only join one (the pod's, held by
// the pause process): creating user namespaces is the agent's job, and its
// mappings must be given because runc needs them to join.
func specUserns(l *specs.Linux) (string, error) {
	const field = "bundle_spec.linux"
	path := ""
	for i, ns := range l.Namespaces {
		if ns.Type != specs.UserNamespace {
			continue
		}
		if ns.Path == "" {
			return "", invalid(fmt.Sprintf("%s.namespaces[%d].path", field, i), "a container may only join the pod's user namespace, not create one")
		}
		path = ns.Path
	}
	if path == "" {
		if len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0 {
			return "", invalid(field+".uidMappings", "set without a user namespace")
		}
		return "", nil
	}
	if err := validateIDMappings(field+".uidMappings", l.UIDMappings); err != nil {
		return "", err
	}
	if err := validateIDMappings(field+".gidMappings", l.GIDMappings); err != nil {
		return "", err
	}
	return path, nil
}

// checkJoinedUserns checks that the mappings a spec gives are those of the
// user namespace it joins. runc 1.1 takes them on trust: it computes the
// container root's guest IDs from them (for the owner of /dev and of the
// stdio pipes), so a wrong map would hand guest files to another ID.
func checkJoinedUserns(l *specs.Linux, nsPath string) error {
	dir := strings.TrimSuffix(nsPath, "/ns/user")
	for _, f := range []struct {
		name string
		want []specs.LinuxIDMapping
	}{{"uid_map", l.UIDMappings}, {"gid_map", l.GIDMappings}} {
		got, err := readIDMap(dir + "/" + f.name)
		if err != nil {
			return fmt.Errorf("user namespace %s: %w: %w", nsPath, err, ErrFailedPrecondition)
		}
		if !slices.Equal(got, f.want) {
			return invalid("bundle_spec.linux", "%s %v differs from the %s %v of the user namespace it joins", f.name, f.want, f.name, got)
		}
	}
	return nil
}

// readIDMap parses /proc/<pid>/uid_map or gid_map.
func readIDMap(path string) ([]specs.LinuxIDMapping, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []specs.LinuxIDMapping
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("%s: malformed line %q", path, line)
		}
		var v [3]uint32
		for i := range f {
			n, err := strconv.ParseUint(f[i], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			v[i] = uint32(n)
		}
		out = append(out, specs.LinuxIDMapping{ContainerID: v[0], HostID: v[1], Size: v[2]})
	}
	return out, nil
}
