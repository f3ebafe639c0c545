package cri

import (
	"fmt"
	"path/filepath"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
	"github.com/podvisor/podvisor/cri/ocispec"
	"github.com/podvisor/podvisor/network/sysctl"
)

// Limits on request fields (kubelet's are smaller).
const (
	maxNameLen       = 253
	maxKeyLen        = 317 // 253-byte prefix + '/' + 63-byte name
	maxMapBytes      = 256 << 10
	maxListEntries   = 1024
	maxCommandBytes  = 1 << 20
	maxExecSyncBytes = 16 << 20
)

func invalid(field, format string, a ...any) error {
	return fmt.Errorf("%s: "+format+": %w", append(append([]any{field}, a...), errdefs.ErrInvalidArgument)...)
}

func validateName(field, v string) error {
	switch {
	case v == "":
		return invalid(field, "is empty")
	case len(v) > maxNameLen:
		return invalid(field, "longer than %d bytes", maxNameLen)
	case strings.ContainsAny(v, "\x00/_\n"):
		return invalid(field, "%q contains '/', '_', NUL or newline", v)
	}
	return nil
}

func validateMap(field string, m map[string]string) error {
	total := 0
	for k, v := range m {
		if k == "" || len(k) > maxKeyLen || strings.ContainsAny(k, "\x00\n") {
			return invalid(field, "key %q is empty, longer than %d bytes or has NUL/newline", truncate(k, 64), maxKeyLen)
		}
		total += len(k) + len(v)
	}
	if total > maxMapBytes {
		return invalid(field, "%d bytes, more than %d", total, maxMapBytes)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func validateNamespaces(field string, o *runtime.NamespaceOption) error {
	for _, n := range []struct {
		name string
		mode runtime.NamespaceMode
	}{{"network", o.GetNetwork()}, {"pid", o.GetPid()}, {"ipc", o.GetIpc()}} {
		if n.mode == runtime.NamespaceMode_NODE {
			return invalid(field+"."+n.name, "host namespaces cannot be used by a pod VM (NODE mode)")
		}
	}
	// userns_options: validateUserns for the pod; a container's must be
	// its pod's (checkContainerUserns).
	return nil
}

func validateSandboxConfig(c *runtime.PodSandboxConfig) error {
	if c == nil {
		return invalid("config", "is missing")
	}
	md := c.Metadata
	if md == nil {
		return invalid("config.metadata", "is missing")
	}
	if err := validateName("config.metadata.name", md.Name); err != nil {
		return err
	}
	if err := validateName("config.metadata.namespace", md.Namespace); err != nil {
		return err
	}
	if md.Uid == "" || len(md.Uid) > maxNameLen || strings.ContainsAny(md.Uid, "\x00/_\n") {
		return invalid("config.metadata.uid", "%q is empty, too long or has '/', '_', NUL or newline", truncate(md.Uid, 64))
	}
	if c.LogDirectory != "" && !filepath.IsAbs(c.LogDirectory) {
		return invalid("config.log_directory", "%q is not absolute", c.LogDirectory)
	}
	if len(c.Hostname) > 64 || strings.ContainsAny(c.Hostname, "/ \t\n\x00") {
		return invalid("config.hostname", "%q: at most 64 bytes, no '/' or whitespace", truncate(c.Hostname, 80))
	}
	if err := validateMap("config.labels", c.Labels); err != nil {
		return err
	}
	if err := validateMap("config.annotations", c.Annotations); err != nil {
		return err
	}
	if d := c.DnsConfig; d != nil {
		if len(d.Servers) > 16 || len(d.Searches) > 32 || len(d.Options) > 32 {
			return invalid("config.dns_config", "too many servers, searches or options")
		}
		for i, s := range append(append(append([]string{}, d.Servers...), d.Searches...), d.Options...) {
			if s == "" || len(s) > maxNameLen || strings.ContainsAny(s, " \t\n\x00") {
				return invalid("config.dns_config", "entry %d %q is empty, too long or has whitespace", i, truncate(s, 64))
			}
		}
	}
	for i, pm := range c.PortMappings {
		f := fmt.Sprintf("config.port_mappings[%d]", i)
		if pm.ContainerPort < 1 || pm.ContainerPort > 65535 {
			return invalid(f+".container_port", "%d out of range 1-65535", pm.ContainerPort)
		}
		if pm.HostPort < 0 || pm.HostPort > 65535 {
			return invalid(f+".host_port", "%d out of range 0-65535", pm.HostPort)
		}
	}
	if l := c.Linux; l != nil {
		sc := l.SecurityContext
		if err := validateNamespaces("config.linux.security_context.namespace_options", sc.GetNamespaceOptions()); err != nil {
			return err
		}
		if err := validateMap("config.linux.sysctls", l.Sysctls); err != nil {
			return err
		}
		// The allow-list is applied here, before any network or VM is
		// built; the agent checks again in the guest.
		if err := sysctl.Validate(l.Sysctls); err != nil {
			return invalid("config.linux.sysctls", "%v", err)
		}
		if r := l.Resources; r != nil {
			if err := ocispec.ValidateResources("config.linux.resources", r); err != nil {
				return err
			}
		}
	}
	return nil
}

func validateContainerConfig(c *runtime.ContainerConfig) error {
	if c == nil {
		return invalid("config", "is missing")
	}
	if c.Metadata == nil {
		return invalid("config.metadata", "is missing")
	}
	if err := validateName("config.metadata.name", c.Metadata.Name); err != nil {
		return err
	}
	if c.Image == nil || c.Image.Image == "" {
		return invalid("config.image.image", "is empty")
	}
	if c.LogPath != "" && (filepath.IsAbs(c.LogPath) || !filepath.IsLocal(c.LogPath)) {
		return invalid("config.log_path", "%q must be relative to the pod's log directory and stay inside it", c.LogPath)
	}
	if c.WorkingDir != "" && !filepath.IsAbs(c.WorkingDir) {
		return invalid("config.working_dir", "%q is not absolute", c.WorkingDir)
	}
	n := 0
	for _, a := range append(append([]string{}, c.Command...), c.Args...) {
		n += len(a)
	}
	if n > maxCommandBytes || len(c.Command)+len(c.Args) > maxListEntries {
		return invalid("config.command", "command and args are longer than %d bytes", maxCommandBytes)
	}
	if len(c.Envs) > maxListEntries {
		return invalid("config.envs", "more than %d entries", maxListEntries)
	}
	for i, e := range c.Envs {
		if e.Key == "" || strings.ContainsAny(e.Key, "=\x00") {
			return invalid(fmt.Sprintf("config.envs[%d].key", i), "%q is empty or has '=' or NUL", truncate(e.Key, 64))
		}
	}
	if err := validateMap("config.labels", c.Labels); err != nil {
		return err
	}
	if err := validateMap("config.annotations", c.Annotations); err != nil {
		return err
	}
	for i, m := range c.Mounts {
		f := fmt.Sprintf("config.mounts[%d]", i)
		if !filepath.IsAbs(m.ContainerPath) {
			return invalid(f+".container_path", "%q is not absolute", m.ContainerPath)
		}
		if err := validateImageMount(f, m); err != nil {
			return err
		}
		if !isImageMount(m) && !filepath.IsAbs(m.HostPath) {
			return invalid(f+".host_path", "%q is not absolute", m.HostPath)
		}
		if len(m.UidMappings) > 0 || len(m.GidMappings) > 0 {
			return invalid(f, "ID-mapped mounts are not supported in pod VMs")
		}
	}
	if l := c.Linux; l != nil {
		sc := l.SecurityContext
		if err := validateNamespaces("config.linux.security_context.namespace_options", sc.GetNamespaceOptions()); err != nil {
			return err
		}
		if err := ocispec.ValidateResources("config.linux.resources", l.Resources); err != nil {
			return err
		}
		if p := sc.GetApparmor(); p != nil && p.ProfileType == runtime.SecurityProfile_Localhost {
			return invalid("config.linux.security_context.apparmor", "AppArmor profiles cannot be loaded into pod VMs")
		}
	}
	return nil
}

// validateImageMount checks an image volume (a mount with an image and no
// host path): read-only, and a sub-path that stays inside the image.
func validateImageMount(f string, m *runtime.Mount) error {
	if !isImageMount(m) {
		if m.ImageSubPath != "" {
			return invalid(f+".image_sub_path", "set without an image")
		}
		return nil
	}
	switch {
	case m.HostPath != "":
		return invalid(f+".host_path", "an image volume has no host path")
	case !m.Readonly:
		return invalid(f+".readonly", "image volumes are read-only")
	case m.Propagation == runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		return invalid(f+".propagation", "an image volume cannot propagate mounts back")
	}
	if p := m.ImageSubPath; p != "" && (filepath.IsAbs(p) || !filepath.IsLocal(p)) {
		return invalid(f+".image_sub_path", "%q must be relative and stay inside the image", truncate(p, 256))
	}
	return nil
}

// isImageMount tells an image volume from a host path mount.
func isImageMount(m *runtime.Mount) bool { return m.GetImage().GetImage() != "" }

// sandboxName is the reserved name of a pod sandbox, as kubelet builds it.
func sandboxName(md *runtime.PodSandboxMetadata) string {
	return fmt.Sprintf("%s_%s_%s_%d", md.Name, md.Namespace, md.Uid, md.Attempt)
}

// containerName is the reserved name of a container.
func containerName(c *runtime.ContainerMetadata, s *runtime.PodSandboxMetadata) string {
	return fmt.Sprintf("%s_%s_%s_%s_%d", c.Name, s.Name, s.Namespace, s.Uid, c.Attempt)
}
