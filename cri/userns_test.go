package cri

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
)

const usernsField = "config.linux.security_context.namespace_options.userns_options"

func idMap(containerID, hostID, length uint32) []*runtime.IDMapping {
	return []*runtime.IDMapping{{ContainerId: containerID, HostId: hostID, Length: length}}
}

// usernsPodConfig is a pod with a user namespace mapping 0 → 1000 of
// length 100000, as critest asks.
func usernsPodConfig(name string) *runtime.PodSandboxConfig {
	c := podConfig(name)
	c.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{
			Mode: runtime.NamespaceMode_POD, Uids: idMap(0, 1000, 100000), Gids: idMap(0, 1000, 100000),
		}},
	}}
	return c
}

func TestRunPodSandboxUsernsValidation(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name  string
		u     *runtime.UserNamespace
		field string
	}{
		{"container mode", &runtime.UserNamespace{Mode: runtime.NamespaceMode_CONTAINER}, usernsField + ".mode"},
		{"target mode", &runtime.UserNamespace{Mode: runtime.NamespaceMode_TARGET}, usernsField + ".mode"},
		{"node with mappings", &runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE, Uids: idMap(0, 1000, 10)}, usernsField},
		{"pod without mappings", &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD}, usernsField + ".uids"},
		{"two uid mappings", &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD,
			Uids: append(idMap(0, 1000, 100000), idMap(0, 2000, 100000)...), Gids: idMap(0, 1000, 100000)}, usernsField + ".uids"},
		{"no gid mapping", &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: idMap(0, 1000, 10)}, usernsField + ".gids"},
		{"root not mapped", &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: idMap(1, 1000, 100000), Gids: idMap(1, 1000, 100000)}, usernsField + ".uids[0].container_id"},
		{"empty range", &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: idMap(0, 1000, 0), Gids: idMap(0, 1000, 10)}, usernsField + ".uids[0].length"},
		{"guest root", &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: idMap(0, 0, 10), Gids: idMap(0, 0, 10)}, usernsField + ".uids[0].host_id"},
		{"overflow", &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: idMap(0, 1000, 10), Gids: idMap(0, 1<<31, 1<<31)}, usernsField + ".gids[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := podConfig("p")
			c.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{UsernsOptions: tc.u}}}
			_, err := e.s.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: c})
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want InvalidArgument naming %s", err, tc.field)
			}
		})
	}
	if e.vms.boots != 0 || e.net.count() != 0 {
		t.Fatal("validation failures must have no side effects")
	}
}

func TestRunPodSandboxUsernsUnsupportedHost(t *testing.T) {
	e := newEnv(t)
	e.features.UserNamespaces = false
	e.reopen()
	_, err := e.s.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: usernsPodConfig("p")})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), usernsField+".mode") {
		t.Fatalf("err = %v, want InvalidArgument naming %s.mode", err, usernsField)
	}
	st, err := e.s.Status(context.Background(), &runtime.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range st.RuntimeHandlers {
		if h.Features.UserNamespaces {
			t.Errorf("handler %q advertises user namespaces the host cannot do", h.Name)
		}
	}
}

func TestStatusAdvertisesUserns(t *testing.T) {
	e := newEnv(t)
	st, err := e.s.Status(context.Background(), &runtime.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range st.RuntimeHandlers {
		if !h.Features.UserNamespaces || !h.Features.RecursiveReadOnlyMounts {
			t.Errorf("handler %q features %+v", h.Name, h.Features)
		}
	}
	var cfg struct {
		StateDir string `json:"stateDir"`
	}
	if err := json.Unmarshal([]byte(st.Info["config"]), &cfg); err != nil || cfg.StateDir != e.features.RootfsDir {
		t.Fatalf("stateDir %q (%v), want %q", cfg.StateDir, err, e.features.RootfsDir)
	}
}

// usernsCtrConfig is a container carrying its pod's user namespace options,
// as kubelet sends it.
func usernsCtrConfig(name string, pod *runtime.PodSandboxConfig) *runtime.ContainerConfig {
	c := ctrConfig(name)
	c.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{
		Pid:           runtime.NamespaceMode_CONTAINER,
		UsernsOptions: pod.Linux.SecurityContext.NamespaceOptions.UsernsOptions,
	}
	return c
}

func TestCreateContainerInPodUserns(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	podCfg := usernsPodConfig("p")
	r, err := e.s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podCfg})
	if err != nil {
		t.Fatal(err)
	}
	pod := r.PodSandboxId
	cr, err := e.s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: usernsCtrConfig("c", podCfg)})
	if err != nil {
		t.Fatal(err)
	}
	vm := e.vms.get(pod)
	want := IDMapping{UID: IDRange{0, 1000, 100000}, GID: IDRange{0, 1000, 100000}}
	if len(vm.userns) != 1 || vm.userns[0] != want {
		t.Fatalf("pod namespaces asked with %+v, want %+v", vm.userns, want)
	}
	if got := vm.rootfs[cr.ContainerId].Userns; got != want {
		t.Fatalf("rootfs userns %+v, want %+v", got, want)
	}
	s := vm.containers[cr.ContainerId]
	ns := map[specs.LinuxNamespaceType]string{}
	for _, n := range s.Linux.Namespaces {
		ns[n.Type] = n.Path
	}
	if ns[specs.UserNamespace] != "/proc/4242/ns/user" || ns[specs.IPCNamespace] != "/proc/4242/ns/ipc" {
		t.Fatalf("namespaces %+v: want the holder's user and IPC namespaces", ns)
	}
	if p, ok := ns[specs.PIDNamespace]; !ok || p != "" {
		t.Fatalf("pid namespace %q: want a new one (mode CONTAINER)", p)
	}
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 100000}}
	if len(s.Linux.UIDMappings) != 1 || s.Linux.UIDMappings[0] != m[0] || len(s.Linux.GIDMappings) != 1 || s.Linux.GIDMappings[0] != m[0] {
		t.Fatalf("mappings %+v %+v", s.Linux.UIDMappings, s.Linux.GIDMappings)
	}
	for _, mnt := range s.Mounts {
		if mnt.Type == "sysfs" {
			t.Fatalf("sysfs mount %+v: the guest's network namespace is not the user namespace's", mnt)
		}
	}

	// The mappings outlive a daemon restart: they are in the sandbox's
	// stored config.
	e.reopen()
	if _, err := e.s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: usernsCtrConfig("d", podCfg)}); err != nil {
		t.Fatal(err)
	}
	vm = e.vms.get(pod)
	if last := vm.userns[len(vm.userns)-1]; last != want {
		t.Fatalf("after restart the pod namespaces were asked with %+v", last)
	}
}

func TestCreateContainerUsernsMustBePods(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	podCfg := usernsPodConfig("p")
	r, err := e.s.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podCfg})
	if err != nil {
		t.Fatal(err)
	}
	plain := e.runPod("plain")
	other := usernsCtrConfig("c", podCfg)
	other.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{
		Mode: runtime.NamespaceMode_POD, Uids: idMap(0, 5000, 100000), Gids: idMap(0, 1000, 100000)}
	for _, tc := range []struct {
		name string
		pod  string
		cfg  *runtime.ContainerConfig
	}{
		{"none in a userns pod", r.PodSandboxId, ctrConfig("a")},
		{"other mapping", r.PodSandboxId, other},
		{"userns in a plain pod", plain, usernsCtrConfig("b", podCfg)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: tc.pod, Config: tc.cfg})
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), usernsField) {
				t.Fatalf("err = %v, want InvalidArgument naming %s", err, usernsField)
			}
		})
	}
	// A NODE-mode container in a plain pod stays in the guest's user
	// namespace.
	node := ctrConfig("n")
	node.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE}}
	cr, err := e.s.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: plain, Config: node})
	if err != nil {
		t.Fatal(err)
	}
	s := e.vms.get(plain).containers[cr.ContainerId]
	for _, n := range s.Linux.Namespaces {
		if n.Type == specs.UserNamespace {
			t.Fatal("NODE mode container has a user namespace")
		}
	}
	if s.Linux.UIDMappings != nil || e.vms.get(plain).rootfs[cr.ContainerId].Userns != (IDMapping{}) {
		t.Fatal("NODE mode container has mappings")
	}
}
