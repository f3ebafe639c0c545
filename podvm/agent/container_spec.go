package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// maxSpecSize bounds an OCI runtime spec, process or resources document.
const maxSpecSize = 1 << 20

// guestMountTypes are the filesystems a container may mount that live
// entirely in the guest; anything else must be a bind mount of something
// the host shared or the agent wrote.
var guestMountTypes = []string{"proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2"}

// nsPathPattern is the only form of a namespace path: joining a namespace
// of another process of the pod (shared PID or IPC namespaces).
var nsPathPattern = regexp.MustCompile(`^/proc/[1-9][0-9]{0,9}/ns/(pid|ipc|uts|net|mnt|user|cgroup|time)$`)

// decodeStrict decodes a JSON document of at most maxSpecSize bytes into v,
// refusing unknown fields (host and agent build from the same runtime-spec
// version) and trailing data.
func decodeStrict(field string, data []byte, v any) error {
	if len(data) == 0 {
		return invalid(field, "empty")
	}
	if len(data) > maxSpecSize {
		return invalid(field, "%d bytes, more than %d", len(data), maxSpecSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid(field, "%v", err)
	}
	if dec.More() {
		return invalid(field, "trailing data after the JSON document")
	}
	return nil
}

// specPaths are the guest directories a spec may refer to.
type specPaths struct {
	shared string // the pod's shared directory
	net    string // resolv.conf, hostname, hosts
}

// rootDir is the directory a container's root must be under.
func (p specPaths) rootDir(id string) string {
	return path.Join(p.shared, "containers", id) + "/"
}

// validateSpec checks an OCI runtime spec for container id, in place: an
// empty cgroups path becomes CgroupParent/<id>. It only looks at the
// request; resolveSpecPaths checks what the paths point to.
func validateSpec(id string, s *specs.Spec, paths specPaths) error {
	if s.Version == "" {
		return invalid("bundle_spec.ociVersion", "empty")
	}
	if s.Hooks != nil {
		return invalid("bundle_spec.hooks", "hooks are not allowed")
	}
	if s.Process == nil {
		return invalid("bundle_spec.process", "missing")
	}
	if err := validateOCIProcess("bundle_spec.process", s.Process); err != nil {
		return err
	}
	if s.Root == nil || s.Root.Path == "" {
		return invalid("bundle_spec.root.path", "missing")
	}
	if !under(s.Root.Path, paths.rootDir(id)) {
		return invalid("bundle_spec.root.path", "%q is not under %s", truncate(s.Root.Path, 256), paths.rootDir(id))
	}
	if s.Linux == nil {
		return invalid("bundle_spec.linux", "missing")
	}
	for i, ns := range s.Linux.Namespaces {
		if ns.Path != "" && !nsPathPattern.MatchString(ns.Path) {
			return invalid(fmt.Sprintf("bundle_spec.linux.namespaces[%d].path", i), "%q is not /proc/<pid>/ns/<type>", truncate(ns.Path, 256))
		}
	}
	userns, err := specUserns(s.Linux)
	if err != nil {
		return err
	}
	for i, m := range s.Mounts {
		field := fmt.Sprintf("bundle_spec.mounts[%d]", i)
		if isGuestSysfsBind(m) {
			if userns == "" {
				return invalid(field+".source", "the guest's /sys is bound only into containers of a pod user namespace")
			}
			continue
		}
		if err := validateMount(field, m, paths); err != nil {
			return err
		}
	}
	return validateCgroupsPath(id, s.Linux)
}

func validateCgroupsPath(id string, l *specs.Linux) error {
	const field = "bundle_spec.linux.cgroupsPath"
	if l.CgroupsPath == "" {
		l.CgroupsPath = path.Join(CgroupParent, id)
		return nil
	}
	p := l.CgroupsPath
	if strings.ContainsAny(p, ":\x00") || path.Clean(p) != p || !strings.HasPrefix(p, CgroupParent+"/") {
		return invalid(field, "%q is not a clean path under %s/ (cgroupfs form, not systemd slice:prefix:name)", truncate(p, 256), CgroupParent)
	}
	return nil
}

// validateOCIProcess checks the fields of an OCI process the agent relies
// on; runc checks the rest.
func validateOCIProcess(field string, p *specs.Process) error {
	if len(p.Args) == 0 || p.Args[0] == "" {
		return invalid(field+".args", "empty")
	}
	if len(p.Args) > maxArgs {
		return invalid(field+".args", "%d entries, more than %d", len(p.Args), maxArgs)
	}
	if len(p.Env) > maxEnv {
		return invalid(field+".env", "%d entries, more than %d", len(p.Env), maxEnv)
	}
	for i, e := range p.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" || strings.IndexByte(e, 0) >= 0 {
			return invalid(fmt.Sprintf("%s.env[%d]", field, i), "not of the form KEY=VALUE with a non-empty KEY")
		}
	}
	if !path.IsAbs(p.Cwd) {
		return invalid(field+".cwd", "%q is not absolute", truncate(p.Cwd, 256))
	}
	if p.ConsoleSize != nil && (p.ConsoleSize.Height > maxWinsize || p.ConsoleSize.Width > maxWinsize) {
		return invalid(field+".consoleSize", "larger than %d", maxWinsize)
	}
	if p.ConsoleSize != nil && !p.Terminal {
		return invalid(field+".consoleSize", "set without terminal")
	}
	return nil
}

func validateMount(field string, m specs.Mount, paths specPaths) error {
	if !path.IsAbs(m.Destination) || strings.IndexByte(m.Destination, 0) >= 0 {
		return invalid(field+".destination", "%q is not an absolute path", truncate(m.Destination, 256))
	}
	if slices.Contains(strings.Split(m.Destination, "/"), "..") {
		return invalid(field+".destination", "%q contains ..", truncate(m.Destination, 256))
	}
	if isBind(m) {
		if !bindSourceAllowed(m.Source, paths) {
			return invalid(field+".source", "bind mount of %q: only %s/ and %s/ may be bind-mounted", truncate(m.Source, 256), paths.shared, paths.net)
		}
		return nil
	}
	if !slices.Contains(guestMountTypes, m.Type) {
		return invalid(field+".type", "%q is not one of %v and not a bind mount", truncate(m.Type, 64), guestMountTypes)
	}
	return nil
}

// isGuestSysfsBind reports whether m is the read-only bind of the guest's
// /sys on /sys that replaces a sysfs mount in a pod user namespace: sysfs
// can only be mounted by the user namespace owning the network namespace,
// and the pod's network namespace is the guest's.
func isGuestSysfsBind(m specs.Mount) bool {
	return isBind(m) && m.Source == "/sys" && m.Destination == "/sys" && slices.Contains(m.Options, "rro")
}

func isBind(m specs.Mount) bool {
	return m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

func bindSourceAllowed(src string, paths specPaths) bool {
	return under(src, paths.shared+"/") || under(src, paths.net+"/")
}

// under reports whether p, once cleaned, is strictly inside dir (which
// ends in a slash).
func under(p, dir string) bool {
	if strings.IndexByte(p, 0) >= 0 || !path.IsAbs(p) {
		return false
	}
	return strings.HasPrefix(path.Clean(p)+"/", dir) && path.Clean(p)+"/" != dir
}

// resolveSpecPaths checks that the root and the bind-mount sources still
// lie where validateSpec saw them once symbolic links are followed: a
// symlink the host shared (or a container planted in a volume) must not
// point the guest's runc at the guest's own files. runc resolves the paths
// again later, so this narrows, not closes, the window; the host is the
// one that must not share such links.
func resolveSpecPaths(id string, s *specs.Spec, paths specPaths) error {
	shared, err := filepath.EvalSymlinks(paths.shared)
	if err != nil {
		return fmt.Errorf("shared directory: %w: %w", err, ErrFailedPrecondition)
	}
	net, err := filepath.EvalSymlinks(paths.net)
	if err != nil {
		net = paths.net // not configured yet: nothing under it exists either
	}
	real := specPaths{shared: shared, net: net}
	root, err := filepath.EvalSymlinks(s.Root.Path)
	if err != nil {
		return fmt.Errorf("bundle_spec.root.path: %w: %w", err, ErrFailedPrecondition)
	}
	if !under(root, real.rootDir(id)) {
		return invalid("bundle_spec.root.path", "resolves to %q, outside %s", truncate(root, 256), paths.rootDir(id))
	}
	if userns, _ := specUserns(s.Linux); userns != "" {
		if err := checkJoinedUserns(s.Linux, userns); err != nil {
			return err
		}
	}
	for i, m := range s.Mounts {
		if !isBind(m) || isGuestSysfsBind(m) {
			continue
		}
		src, err := filepath.EvalSymlinks(m.Source)
		if err != nil {
			return fmt.Errorf("bundle_spec.mounts[%d].source: %w: %w", i, err, ErrFailedPrecondition)
		}
		if !bindSourceAllowed(src, real) {
			return invalid(fmt.Sprintf("bundle_spec.mounts[%d].source", i), "resolves to %q, outside %s/ and %s/", truncate(src, 256), paths.shared, paths.net)
		}
	}
	return nil
}
