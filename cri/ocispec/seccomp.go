package ocispec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
)

// maxSeccompProfileSize bounds a Localhost profile read from the host.
const maxSeccompProfileSize = 1 << 20

// deniedSyscalls are refused with EPERM by the RuntimeDefault profile.
// Unlike containerd's allow-list, podvisor's default profile is a
// deny-list: the guest kernel, not seccomp, is the isolation boundary, and
// the profile removes the syscalls that give a container control over that
// kernel (modules, kexec, keyrings, bpf, clocks, swap, reboot, accounting,
// raw handles) or that containerd also denies to unprivileged workloads.
var deniedSyscalls = []string{
	"acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
	"fanotify_init", "finit_module", "get_kernel_syms", "get_mempolicy", "init_module", "ioperm",
	"iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mbind",
	"move_pages", "name_to_handle_at", "nfsservctl", "open_by_handle_at", "perf_event_open",
	"pivot_root", "process_vm_readv", "process_vm_writev", "quotactl", "reboot", "request_key",
	"set_mempolicy", "settimeofday", "stime", "swapoff", "swapon", "sysfs", "_sysctl",
	"uselib", "userfaultfd", "ustat", "vm86", "vm86old",
}

// DefaultSeccomp returns the RuntimeDefault profile.
func DefaultSeccomp() *specs.LinuxSeccomp {
	eperm := uint(1)
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{{
			Names:    append([]string(nil), deniedSyscalls...),
			Action:   specs.ActErrno,
			ErrnoRet: &eperm,
		}},
	}
}

// Seccomp resolves a container's seccomp profile: nil (and Unconfined) is
// no filter, RuntimeDefault the embedded profile, Localhost a JSON profile
// read from the host path it names. Privileged containers run unconfined,
// as under containerd. legacyPath is the deprecated seccomp_profile_path,
// used when profile is nil.
func Seccomp(profile *runtime.SecurityProfile, legacyPath string, privileged bool) (*specs.LinuxSeccomp, error) {
	if privileged {
		return nil, nil
	}
	if profile == nil {
		switch {
		case legacyPath == "" || legacyPath == "unconfined":
			return nil, nil
		case legacyPath == "runtime/default" || legacyPath == "docker/default":
			return DefaultSeccomp(), nil
		case strings.HasPrefix(legacyPath, "localhost/"):
			return LoadSeccompProfile(strings.TrimPrefix(legacyPath, "localhost/"))
		}
		return nil, fmt.Errorf("linux.security_context.seccomp_profile_path %q is not unconfined, runtime/default or localhost/<path>: %w", legacyPath, errdefs.ErrInvalidArgument)
	}
	switch profile.ProfileType {
	case runtime.SecurityProfile_Unconfined:
		return nil, nil
	case runtime.SecurityProfile_RuntimeDefault:
		return DefaultSeccomp(), nil
	case runtime.SecurityProfile_Localhost:
		return LoadSeccompProfile(profile.LocalhostRef)
	}
	return nil, fmt.Errorf("linux.security_context.seccomp.profile_type %d: %w", profile.ProfileType, errdefs.ErrInvalidArgument)
}

// LoadSeccompProfile reads, decodes and validates a seccomp profile in the
// OCI (or Docker) JSON format from an absolute host path.
func LoadSeccompProfile(path string) (*specs.LinuxSeccomp, error) {
	const field = "linux.security_context.seccomp.localhost_ref"
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%s %q is not an absolute path: %w", field, path, errdefs.ErrInvalidArgument)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", field, err, errdefs.ErrInvalidArgument)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSeccompProfileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", field, path, err)
	}
	n := len(data)
	if n > maxSeccompProfileSize {
		return nil, fmt.Errorf("%s %q is larger than %d bytes: %w", field, path, maxSeccompProfileSize, errdefs.ErrInvalidArgument)
	}
	return ParseSeccompProfile(data[:n])
}

// dockerProfile is the Docker/containerd profile format, a superset of the
// OCI one ("archMap" instead of "architectures").
type dockerProfile struct {
	specs.LinuxSeccomp
	ArchMap []struct {
		Arch specs.Arch `json:"architecture"`
	} `json:"archMap,omitempty"`
}

// ParseSeccompProfile decodes and validates a JSON seccomp profile.
func ParseSeccompProfile(data []byte) (*specs.LinuxSeccomp, error) {
	invalid := func(format string, a ...any) error {
		return fmt.Errorf("seccomp profile: "+format+": %w", append(a, errdefs.ErrInvalidArgument)...)
	}
	var p dockerProfile
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&p); err != nil {
		return nil, invalid("%v", err)
	}
	s := p.LinuxSeccomp
	if len(s.Architectures) == 0 {
		for _, a := range p.ArchMap {
			s.Architectures = append(s.Architectures, a.Arch)
		}
	}
	if !validAction(s.DefaultAction) {
		return nil, invalid("defaultAction %q", s.DefaultAction)
	}
	for i, sc := range s.Syscalls {
		if len(sc.Names) == 0 {
			return nil, invalid("syscalls[%d] has no names", i)
		}
		if !validAction(sc.Action) {
			return nil, invalid("syscalls[%d].action %q", i, sc.Action)
		}
		for j, a := range sc.Args {
			switch a.Op {
			case specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
				specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual:
			default:
				return nil, invalid("syscalls[%d].args[%d].op %q", i, j, a.Op)
			}
		}
	}
	if s.ListenerPath != "" {
		return nil, invalid("listenerPath is not supported in a pod VM")
	}
	return &s, nil
}

func validAction(a specs.LinuxSeccompAction) bool {
	switch a {
	case specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap, specs.ActErrno,
		specs.ActTrace, specs.ActAllow, specs.ActLog:
		return true
	}
	return false
}
