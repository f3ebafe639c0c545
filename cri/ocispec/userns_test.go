package ocispec

import (
	"errors"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
)

func usernsInput(pid runtime.NamespaceMode) Input {
	in := baseInput()
	m := []*runtime.IDMapping{{ContainerId: 0, HostId: 1000, Length: 100000}}
	in.Config.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{
		Pid:           pid,
		UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m, Gids: m},
	}
	in.PodUserNamespace, in.PodIPCNamespace = "/proc/7/ns/user", "/proc/7/ns/ipc"
	if pid == runtime.NamespaceMode_POD {
		in.PodPIDNamespace = "/proc/7/ns/pid"
	}
	return in
}

func TestBuildUserns(t *testing.T) {
	s, err := Build(usernsInput(runtime.NamespaceMode_POD))
	if err != nil {
		t.Fatal(err)
	}
	ns := map[specs.LinuxNamespaceType]string{}
	for _, n := range s.Linux.Namespaces {
		ns[n.Type] = n.Path
	}
	for typ, want := range map[specs.LinuxNamespaceType]string{
		specs.UserNamespace: "/proc/7/ns/user", specs.IPCNamespace: "/proc/7/ns/ipc", specs.PIDNamespace: "/proc/7/ns/pid",
	} {
		if got, ok := ns[typ]; !ok || got != want {
			t.Errorf("%s namespace %q, want %q", typ, got, want)
		}
	}
	want := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 100000}}
	if !slices.Equal(s.Linux.UIDMappings, want) || !slices.Equal(s.Linux.GIDMappings, want) {
		t.Fatalf("mappings %+v %+v", s.Linux.UIDMappings, s.Linux.GIDMappings)
	}
	sys, cover, cgroup := -1, -1, -1
	for i, m := range s.Mounts {
		switch {
		case m.Type == "sysfs":
			t.Errorf("sysfs mount %+v in a user namespace without its network namespace", m)
		case m.Destination == "/sys":
			sys = i
			if m.Source != "/sys" || !slices.Contains(m.Options, "rro") || !slices.Contains(m.Options, "rbind") {
				t.Errorf("/sys %+v, want a recursively read-only bind of the guest's", m)
			}
		case m.Destination == "/sys/fs/cgroup" && m.Type == "tmpfs":
			cover = i
		case m.Destination == "/sys/fs/cgroup":
			cgroup = i
		}
	}
	if !(sys >= 0 && sys < cover && cover < cgroup) {
		t.Fatalf("/sys at %d, cover at %d, cgroup at %d: want them in that order", sys, cover, cgroup)
	}
}

func TestBuildUsernsOwnPIDNamespace(t *testing.T) {
	s, err := Build(usernsInput(runtime.NamespaceMode_CONTAINER))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range s.Linux.Namespaces {
		if n.Type == specs.PIDNamespace && n.Path != "" {
			t.Fatalf("pid namespace %q, want a new one", n.Path)
		}
	}
}

func TestBuildUsernsRefusals(t *testing.T) {
	in := usernsInput(runtime.NamespaceMode_CONTAINER)
	in.PodUserNamespace = ""
	if _, err := Build(in); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("unknown pod user namespace: %v", err)
	}
	in = usernsInput(runtime.NamespaceMode_CONTAINER)
	in.Config.Linux.SecurityContext.Privileged = true
	in.Sandbox.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{Privileged: true}}
	if _, err := Build(in); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("privileged: %v", err)
	}
	for _, m := range []runtime.NamespaceMode{runtime.NamespaceMode_CONTAINER, runtime.NamespaceMode_TARGET} {
		in = usernsInput(runtime.NamespaceMode_CONTAINER)
		in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions.Mode = m
		if _, err := Build(in); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("mode %s: %v", m, err)
		}
	}
}

// TestUsernsModeUnset: an absent userns_options is NODE, though the enum's
// zero value is POD.
func TestUsernsModeUnset(t *testing.T) {
	if UsernsMode(nil) != runtime.NamespaceMode_NODE || UsernsMode(&runtime.UserNamespace{}) != runtime.NamespaceMode_POD {
		t.Fatal("UsernsMode")
	}
	s, err := Build(baseInput())
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.UIDMappings != nil || slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.UserNamespace }) {
		t.Fatal("a container without userns_options got a user namespace")
	}
}
