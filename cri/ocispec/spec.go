package ocispec

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
)

// Input is everything a container's spec is built from. Paths are guest
// paths.
type Input struct {
	ContainerID string
	Config      *runtime.ContainerConfig
	Sandbox     *runtime.PodSandboxConfig
	Image       ImageConfig
	// RootfsPath is the container's rootfs in the guest.
	RootfsPath string
	// User is the resolved process user.
	User specs.User
	// Mounts are the container's CRI mounts with guest sources, in the
	// order of Config.Mounts.
	Mounts []Mount
	// Seccomp is the resolved profile (see Seccomp); nil runs unconfined.
	Seccomp *specs.LinuxSeccomp
	// PodPIDNamespace is the namespace to join for NamespaceMode POD
	// ("/proc/<pid>/ns/pid" of a running container of the pod), "" to
	// create the pod's first one. TargetPIDNamespace likewise for TARGET.
	PodPIDNamespace    string
	TargetPIDNamespace string
	// PodUserNamespace and PodIPCNamespace are the pod's user and IPC
	// namespaces ("/proc/<pid>/ns/user" and …/ipc of the pod's namespace
	// holder) when the pod has a user namespace (userns_options mode
	// POD); "" otherwise.
	PodUserNamespace, PodIPCNamespace string
	// NetFilesDir holds hosts, hostname and resolv.conf in the guest.
	NetFilesDir string
	// CgroupsPath is the container's cgroup in the guest.
	CgroupsPath string
}

// ImageConfig is the part of the image config a spec uses.
type ImageConfig struct {
	Entrypoint, Cmd, Env []string
	WorkingDir           string
}

// Mount is a CRI mount whose source the VM made available in the guest.
type Mount struct {
	ContainerPath     string
	GuestSource       string
	Readonly          bool
	RecursiveReadOnly bool
	Propagation       runtime.MountPropagation
}

// Build returns the OCI runtime spec. Errors are ErrInvalidArgument naming
// the offending field.
func Build(in Input) (*specs.Spec, error) {
	c := in.Config
	if c == nil || in.Sandbox == nil {
		return nil, fmt.Errorf("config: missing: %w", errdefs.ErrInvalidArgument)
	}
	sc := c.GetLinux().GetSecurityContext()
	privileged := sc.GetPrivileged()
	if privileged && !in.Sandbox.GetLinux().GetSecurityContext().GetPrivileged() {
		return nil, fmt.Errorf("linux.security_context.privileged: the pod sandbox is not privileged: %w", errdefs.ErrInvalidArgument)
	}
	if privileged && UsernsMode(sc.GetNamespaceOptions().GetUsernsOptions()) == runtime.NamespaceMode_POD {
		return nil, fmt.Errorf("linux.security_context.privileged: a privileged container cannot run in the pod's user namespace: %w", errdefs.ErrInvalidArgument)
	}
	args, err := Args(c.Command, c.Args, in.Image.Entrypoint, in.Image.Cmd)
	if err != nil {
		return nil, err
	}
	caps, err := Capabilities(sc.GetCapabilities(), privileged)
	if err != nil {
		return nil, err
	}
	cwd := c.WorkingDir
	if cwd == "" {
		cwd = in.Image.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	hostname := PodHostname(in.Sandbox)
	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: in.RootfsPath, Readonly: sc.GetReadonlyRootfs()},
		Process: &specs.Process{
			Terminal:        c.Tty,
			Args:            args,
			Env:             Env(in.Image.Env, c.Envs, hostname),
			Cwd:             cwd,
			User:            in.User,
			Capabilities:    caps,
			NoNewPrivileges: sc.GetNoNewPrivs(),
			Rlimits:         slices.Clone(defaultRlimits),
		},
		Hostname:    hostname,
		Mounts:      nil,
		Annotations: maps(c.Annotations),
		Linux: &specs.Linux{
			CgroupsPath: in.CgroupsPath,
			Resources:   &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
			Seccomp:     in.Seccomp,
		},
	}
	if privileged {
		// Privileged means privileged inside the pod VM: every device of
		// the guest, no masked or read-only paths.
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		s.Linux.Seccomp = nil
	} else {
		s.Linux.MaskedPaths = orDefault(sc.GetMaskedPaths(), DefaultMaskedPaths)
		s.Linux.ReadonlyPaths = orDefault(sc.GetReadonlyPaths(), DefaultReadonlyPaths)
	}
	if err := checkDevices(c.Devices, c.CDIDevices); err != nil {
		return nil, err
	}
	nsPaths := NamespacePaths{PodPID: in.PodPIDNamespace, TargetPID: in.TargetPIDNamespace, PodUser: in.PodUserNamespace, PodIPC: in.PodIPCNamespace}
	if s.Linux.Namespaces, err = Namespaces(sc.GetNamespaceOptions(), nsPaths); err != nil {
		return nil, err
	}
	if s.Mounts, err = Mounts(in.Mounts, in.NetFilesDir, privileged); err != nil {
		return nil, err
	}
	applyUserns(s, sc.GetNamespaceOptions().GetUsernsOptions())
	if err := applyResources(s, c.GetLinux().GetResources()); err != nil {
		return nil, err
	}
	return s, nil
}

func maps(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func orDefault(v, def []string) []string {
	if len(v) > 0 {
		return slices.Clone(v)
	}
	return slices.Clone(def)
}

// Args applies kubelet's rules: a CRI command replaces the image
// entrypoint and its cmd; CRI args alone replace only the image cmd.
func Args(command, args, entrypoint, cmd []string) ([]string, error) {
	if len(command) == 0 {
		command = entrypoint
		if len(args) == 0 {
			args = cmd
		}
	}
	out := append(slices.Clone(command), args...)
	if len(out) == 0 {
		return nil, fmt.Errorf("command: neither the config nor the image gives one: %w", errdefs.ErrInvalidArgument)
	}
	return out, nil
}

// Env merges the image's environment with the config's: a config
// variable replaces the image's of the same name; PATH and HOSTNAME get
// defaults.
func Env(image []string, config []*runtime.KeyValue, hostname string) []string {
	var out []string
	idx := map[string]int{}
	set := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			return
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	if _, ok := envLookup(image, "PATH"); !ok {
		set(DefaultPathEnv)
	}
	if hostname != "" {
		set("HOSTNAME=" + hostname)
	}
	for _, kv := range image {
		set(kv)
	}
	for _, kv := range config {
		set(kv.Key + "=" + string(kv.Value))
	}
	return out
}

func envLookup(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v, true
		}
	}
	return "", false
}

// Capabilities applies containerd's rules: privileged gets every
// capability; otherwise the default set, "ALL" in add adds every one, "ALL"
// in drop removes every one, then the named adds and drops apply.
func Capabilities(c *runtime.Capability, privileged bool) (*specs.LinuxCapabilities, error) {
	var caps []string
	if privileged {
		caps = slices.Clone(allCapabilities)
	} else {
		caps = slices.Clone(defaultCapabilities)
		add, err := capNames("add_capabilities", c.GetAddCapabilities())
		if err != nil {
			return nil, err
		}
		drop, err := capNames("drop_capabilities", c.GetDropCapabilities())
		if err != nil {
			return nil, err
		}
		if slices.Contains(add, "ALL") {
			caps = slices.Clone(allCapabilities)
		}
		if slices.Contains(drop, "ALL") {
			caps = nil
		}
		for _, a := range add {
			if a != "ALL" && !slices.Contains(caps, a) {
				caps = append(caps, a)
			}
		}
		caps = slices.DeleteFunc(caps, func(c string) bool { return slices.Contains(drop, c) })
	}
	if caps == nil {
		caps = []string{}
	}
	return &specs.LinuxCapabilities{
		Bounding:  caps,
		Effective: slices.Clone(caps),
		Permitted: slices.Clone(caps),
	}, nil
}

// capNames normalises "net_admin"/"CAP_NET_ADMIN" to "CAP_NET_ADMIN" and
// rejects unknown names.
func capNames(field string, in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for i, n := range in {
		u := strings.ToUpper(n)
		if u == "ALL" {
			out = append(out, u)
			continue
		}
		if !strings.HasPrefix(u, "CAP_") {
			u = "CAP_" + u
		}
		if !slices.Contains(allCapabilities, u) {
			return nil, fmt.Errorf("linux.security_context.capabilities.%s[%d] %q is not a capability: %w", field, i, n, errdefs.ErrInvalidArgument)
		}
		out = append(out, u)
	}
	return out, nil
}

// NamespacePaths are the namespaces of its pod a container joins, each
// "/proc/<pid>/ns/<type>" of a guest process.
type NamespacePaths struct {
	// PodPID is the pod's PID namespace for NamespaceMode POD, "" to
	// create the pod's first one; TargetPID a running container's for
	// TARGET.
	PodPID, TargetPID string
	// PodUser and PodIPC are the pod's user namespace and the IPC
	// namespace it owns, for a pod with userns_options mode POD.
	PodUser, PodIPC string
}

// Namespaces returns the container's namespaces inside the guest. The
// network namespace is the guest's, which is the pod's; so is the IPC
// namespace for NamespaceMode POD, unless the pod has a user namespace:
// then every container joins it, and the pod's IPC namespace is the one
// it owns (mqueue can only be mounted by the IPC namespace's owner). Host
// (NODE) namespaces are refused; a user namespace mode other than NODE or
// POD too.
func Namespaces(o *runtime.NamespaceOption, p NamespacePaths) ([]specs.LinuxNamespace, error) {
	const f = "linux.security_context.namespace_options"
	for _, n := range []struct {
		name string
		mode runtime.NamespaceMode
	}{{"network", o.GetNetwork()}, {"pid", o.GetPid()}, {"ipc", o.GetIpc()}} {
		if n.mode == runtime.NamespaceMode_NODE {
			return nil, fmt.Errorf("%s.%s: host namespaces cannot be shared with a container in a pod VM: %w", f, n.name, errdefs.ErrInvalidArgument)
		}
	}
	if o.GetNetwork() == runtime.NamespaceMode_TARGET || o.GetIpc() == runtime.NamespaceMode_TARGET {
		return nil, fmt.Errorf("%s: only pid may be TARGET: %w", f, errdefs.ErrInvalidArgument)
	}
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.UTSNamespace}, {Type: specs.CgroupNamespace}}
	userns := false
	switch m := UsernsMode(o.GetUsernsOptions()); m {
	case runtime.NamespaceMode_NODE:
	case runtime.NamespaceMode_POD:
		if p.PodUser == "" || p.PodIPC == "" {
			return nil, fmt.Errorf("%s.userns_options: the pod's user namespace is not known: %w", f, errdefs.ErrFailedPrecondition)
		}
		userns = true
		// runc joins the user namespace first, then the others.
		ns = append(ns, specs.LinuxNamespace{Type: specs.UserNamespace, Path: p.PodUser})
	default:
		return nil, fmt.Errorf("%s.userns_options.mode: %s: only NODE or POD: %w", f, m, errdefs.ErrInvalidArgument)
	}
	switch o.GetPid() {
	case runtime.NamespaceMode_POD:
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: p.PodPID})
	case runtime.NamespaceMode_TARGET:
		if p.TargetPID == "" {
			return nil, fmt.Errorf("%s.target_id: no running target container: %w", f, errdefs.ErrFailedPrecondition)
		}
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace, Path: p.TargetPID})
	default:
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace})
	}
	switch {
	case o.GetIpc() == runtime.NamespaceMode_CONTAINER:
		ns = append(ns, specs.LinuxNamespace{Type: specs.IPCNamespace})
	case userns:
		ns = append(ns, specs.LinuxNamespace{Type: specs.IPCNamespace, Path: p.PodIPC})
	}
	return ns, nil
}

func checkDevices(devs []*runtime.Device, cdi []*runtime.CDIDevice) error {
	if len(devs) > 0 {
		return fmt.Errorf("devices[0] %q: host devices cannot be passed into a pod VM: %w", devs[0].GetHostPath(), errdefs.ErrInvalidArgument)
	}
	if len(cdi) > 0 {
		return fmt.Errorf("CDI_devices[0] %q: CDI devices are not supported in pod VMs: %w", cdi[0].GetName(), errdefs.ErrInvalidArgument)
	}
	return nil
}

// netFiles are bind-mounted from the guest's network files unless a CRI
// mount targets the same path.
var netFiles = []struct{ dest, name string }{
	{"/etc/hosts", "hosts"},
	{"/etc/hostname", "hostname"},
	{"/etc/resolv.conf", "resolv.conf"},
}

// Mounts returns the default mounts, the pod's network files and the CRI
// mounts, later ones over earlier ones at the same destination, sorted so
// that a parent is mounted before its children.
func Mounts(cri []Mount, netDir string, privileged bool) ([]specs.Mount, error) {
	var user []specs.Mount
	dests := map[string]bool{}
	for i, m := range cri {
		f := fmt.Sprintf("mounts[%d]", i)
		if !path.IsAbs(m.ContainerPath) {
			return nil, fmt.Errorf("%s.container_path %q is not absolute: %w", f, m.ContainerPath, errdefs.ErrInvalidArgument)
		}
		if !path.IsAbs(m.GuestSource) {
			return nil, fmt.Errorf("%s: no guest source: %w", f, errdefs.ErrInvalidArgument)
		}
		opts := []string{"rbind"}
		switch m.Propagation {
		case runtime.MountPropagation_PROPAGATION_PRIVATE:
			opts = append(opts, "rprivate")
		case runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
			opts = append(opts, "rslave")
		case runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL:
			opts = append(opts, "rshared")
		default:
			return nil, fmt.Errorf("%s.propagation %d: %w", f, m.Propagation, errdefs.ErrInvalidArgument)
		}
		if m.RecursiveReadOnly {
			if !m.Readonly {
				return nil, fmt.Errorf("%s.recursive_read_only needs readonly: %w", f, errdefs.ErrInvalidArgument)
			}
			if m.Propagation != runtime.MountPropagation_PROPAGATION_PRIVATE {
				return nil, fmt.Errorf("%s.recursive_read_only needs PROPAGATION_PRIVATE: %w", f, errdefs.ErrInvalidArgument)
			}
			opts = append(opts, "rro")
		} else if m.Readonly {
			opts = append(opts, "ro")
		} else {
			opts = append(opts, "rw")
		}
		dest := path.Clean(m.ContainerPath)
		dests[dest] = true
		user = append(user, specs.Mount{Destination: dest, Type: "bind", Source: m.GuestSource, Options: opts})
	}
	var out []specs.Mount
	for _, m := range defaultMounts(privileged) {
		if !dests[m.Destination] {
			out = append(out, m)
		}
	}
	if netDir != "" {
		for _, nf := range netFiles {
			if !dests[nf.dest] {
				out = append(out, specs.Mount{Destination: nf.dest, Type: "bind", Source: path.Join(netDir, nf.name), Options: []string{"rbind", "rprivate", "rw"}})
			}
		}
	}
	out = append(out, user...)
	sort.SliceStable(out, func(i, j int) bool { return depth(out[i].Destination) < depth(out[j].Destination) })
	return out, nil
}

func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(path.Clean(p), "/")
}

// maxHostname is the longest hostname the kernel accepts (a DNS label is
// one byte shorter, and that is what a pod name becomes).
const maxHostname = 63

// PodHostname is the pod VM's hostname: the one the pod asks for, else its
// name cut to a DNS label (pod names may be longer than sethostname takes).
func PodHostname(cfg *runtime.PodSandboxConfig) string {
	if h := cfg.GetHostname(); h != "" {
		return h
	}
	h := cfg.GetMetadata().GetName()
	if len(h) > maxHostname {
		h = strings.TrimRight(h[:maxHostname], "-.")
	}
	return h
}
