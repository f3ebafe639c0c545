package ocispec

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
)

// UserString is the "user[:group]" to resolve against the image's
// /etc/passwd and /etc/group: run_as_user or run_as_username over the
// image's USER, with run_as_group as the group. run_as_group alone is
// ErrInvalidArgument, as critest expects.
func UserString(sc *runtime.LinuxContainerSecurityContext, imageUser string) (string, error) {
	const f = "linux.security_context"
	group := ""
	if g := sc.GetRunAsGroup(); g != nil {
		if sc.GetRunAsUser() == nil && sc.GetRunAsUsername() == "" {
			return "", fmt.Errorf("%s.run_as_group needs run_as_user or run_as_username: %w", f, errdefs.ErrInvalidArgument)
		}
		if g.Value < 0 || g.Value > 1<<32-2 {
			return "", fmt.Errorf("%s.run_as_group %d out of range: %w", f, g.Value, errdefs.ErrInvalidArgument)
		}
		group = strconv.FormatInt(g.Value, 10)
	}
	var user string
	switch {
	case sc.GetRunAsUser() != nil:
		v := sc.GetRunAsUser().Value
		if v < 0 || v > 1<<32-2 {
			return "", fmt.Errorf("%s.run_as_user %d out of range: %w", f, v, errdefs.ErrInvalidArgument)
		}
		user = strconv.FormatInt(v, 10)
	case sc.GetRunAsUsername() != "":
		user = sc.GetRunAsUsername()
	default:
		user = imageUser
	}
	if user == "" {
		user = "0"
	}
	if group != "" {
		// run_as_group replaces any group the image's USER names.
		user, _, _ = strings.Cut(user, ":")
		return user + ":" + group, nil
	}
	return user, nil
}

// User builds the OCI user: the resolved uid and gid, the groups the image
// gives the user (unless the policy is Strict) and the supplemental groups.
func User(uid, gid uint32, imageGroups []uint32, sc *runtime.LinuxContainerSecurityContext) (specs.User, error) {
	u := specs.User{UID: uid, GID: gid}
	var groups []uint32
	if sc.GetSupplementalGroupsPolicy() != runtime.SupplementalGroupsPolicy_Strict {
		groups = append(groups, imageGroups...)
	}
	for i, g := range sc.GetSupplementalGroups() {
		if g < 0 || g > 1<<32-2 {
			return u, fmt.Errorf("linux.security_context.supplemental_groups[%d] %d out of range: %w", i, g, errdefs.ErrInvalidArgument)
		}
		groups = append(groups, uint32(g))
	}
	for _, g := range groups {
		if g != gid && !slices.Contains(u.AdditionalGids, g) {
			u.AdditionalGids = append(u.AdditionalGids, g)
		}
	}
	return u, nil
}
