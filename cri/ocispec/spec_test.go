package ocispec

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
)

func baseInput() Input {
	return Input{
		ContainerID: "c1",
		Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: "app"},
			Image:    &runtime.ImageSpec{Image: "busybox"},
			Linux:    &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{}},
		},
		Sandbox:     &runtime.PodSandboxConfig{Hostname: "pod-host"},
		Image:       ImageConfig{Cmd: []string{"sh"}, Env: []string{"PATH=/bin", "A=image"}},
		RootfsPath:  "/run/podvisor/shared/containers/c1/rootfs",
		NetFilesDir: "/run/podvisor/net",
		CgroupsPath: "/podvisor/c1",
	}
}

func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		name                           string
		command, args, entrypoint, cmd []string
		want                           []string
		wantErr                        bool
	}{
		{"image only", nil, nil, []string{"/ep"}, []string{"c1"}, []string{"/ep", "c1"}, false},
		{"args replace cmd", nil, []string{"a"}, []string{"/ep"}, []string{"c1"}, []string{"/ep", "a"}, false},
		{"command replaces both", []string{"/cmd"}, nil, []string{"/ep"}, []string{"c1"}, []string{"/cmd"}, false},
		{"command and args", []string{"/cmd"}, []string{"x"}, []string{"/ep"}, []string{"c1"}, []string{"/cmd", "x"}, false},
		{"cmd only", nil, nil, nil, []string{"sh"}, []string{"sh"}, false},
		{"args only", nil, []string{"sh"}, nil, nil, []string{"sh"}, false},
		{"nothing", nil, nil, nil, nil, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Args(tc.command, tc.args, tc.entrypoint, tc.cmd)
			if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
				t.Fatalf("Args = %q, %v; want %q (err %v)", got, err, tc.want, tc.wantErr)
			}
			if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("error kind: %v", err)
			}
		})
	}
}

func TestEnv(t *testing.T) {
	for _, tc := range []struct {
		name   string
		image  []string
		config []*runtime.KeyValue
		want   []string
	}{
		{"default path", nil, nil, []string{DefaultPathEnv, "HOSTNAME=h"}},
		{"image path kept", []string{"PATH=/x"}, nil, []string{"HOSTNAME=h", "PATH=/x"}},
		{"config overrides image", []string{"PATH=/x", "A=1"}, []*runtime.KeyValue{{Key: "A", Value: []byte("2")}, {Key: "B", Value: []byte("3")}},
			[]string{"HOSTNAME=h", "PATH=/x", "A=2", "B=3"}},
		{"config overrides hostname", []string{"PATH=/x"}, []*runtime.KeyValue{{Key: "HOSTNAME", Value: []byte("mine")}}, []string{"HOSTNAME=mine", "PATH=/x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Env(tc.image, tc.config, "h"); !slices.Equal(got, tc.want) {
				t.Fatalf("Env = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCapabilities(t *testing.T) {
	for _, tc := range []struct {
		name       string
		add, drop  []string
		privileged bool
		has, lacks []string
		count      int
		wantErr    bool
	}{
		{name: "default", has: []string{"CAP_CHOWN", "CAP_KILL"}, lacks: []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN"}, count: len(defaultCapabilities)},
		{name: "add", add: []string{"NET_ADMIN"}, has: []string{"CAP_NET_ADMIN", "CAP_CHOWN"}, count: len(defaultCapabilities) + 1},
		{name: "add prefixed lower", add: []string{"cap_sys_admin"}, has: []string{"CAP_SYS_ADMIN"}, count: len(defaultCapabilities) + 1},
		{name: "drop", drop: []string{"CHOWN"}, lacks: []string{"CAP_CHOWN"}, count: len(defaultCapabilities) - 1},
		{name: "add all", add: []string{"ALL"}, has: []string{"CAP_SYS_ADMIN", "CAP_BPF"}, count: len(allCapabilities)},
		{name: "add all drop one", add: []string{"ALL"}, drop: []string{"SYS_ADMIN"}, lacks: []string{"CAP_SYS_ADMIN"}, count: len(allCapabilities) - 1},
		{name: "drop all", drop: []string{"ALL"}, count: 0},
		{name: "drop all add one", drop: []string{"ALL"}, add: []string{"CHOWN"}, has: []string{"CAP_CHOWN"}, count: 1},
		{name: "privileged", privileged: true, drop: []string{"ALL"}, has: []string{"CAP_SYS_ADMIN"}, count: len(allCapabilities)},
		{name: "unknown", add: []string{"FLY"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Capabilities(&runtime.Capability{AddCapabilities: tc.add, DropCapabilities: tc.drop}, tc.privileged)
			if tc.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("err = %v, want InvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted} {
				if len(set) != tc.count {
					t.Errorf("set has %d caps, want %d: %v", len(set), tc.count, set)
				}
				for _, h := range tc.has {
					if !slices.Contains(set, h) {
						t.Errorf("missing %s", h)
					}
				}
				for _, l := range tc.lacks {
					if slices.Contains(set, l) {
						t.Errorf("has %s", l)
					}
				}
			}
			if c.Bounding == nil {
				t.Error("nil bounding set; runc reads nil as no change")
			}
		})
	}
}

func TestNamespaces(t *testing.T) {
	types := func(ns []specs.LinuxNamespace) map[specs.LinuxNamespaceType]string {
		m := map[specs.LinuxNamespaceType]string{}
		for _, n := range ns {
			m[n.Type] = n.Path
		}
		return m
	}
	for _, tc := range []struct {
		name     string
		opts     *runtime.NamespaceOption
		podPID   string
		wantPID  *string
		wantIPC  bool
		errField string
	}{
		{name: "defaults (container pid, pod ipc)", opts: nil, wantPID: ptr(""), wantIPC: false},
		{name: "pod pid first container", opts: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}, wantPID: ptr("")},
		{name: "pod pid joins", opts: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}, podPID: "/proc/42/ns/pid", wantPID: ptr("/proc/42/ns/pid")},
		{name: "container ipc", opts: &runtime.NamespaceOption{Ipc: runtime.NamespaceMode_CONTAINER}, wantPID: ptr(""), wantIPC: true},
		{name: "host network", opts: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE}, errField: "namespace_options.network"},
		{name: "host pid", opts: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_NODE}, errField: "namespace_options.pid"},
		{name: "host ipc", opts: &runtime.NamespaceOption{Ipc: runtime.NamespaceMode_NODE}, errField: "namespace_options.ipc"},
		{name: "target without target", opts: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET}, errField: "target_id"},
		{name: "userns", opts: &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD}}, errField: "userns_options"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns, err := Namespaces(tc.opts, NamespacePaths{PodPID: tc.podPID})
			if tc.errField != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errField) {
					t.Fatalf("err = %v, want one naming %s", err, tc.errField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m := types(ns)
			if _, ok := m[specs.NetworkNamespace]; ok {
				t.Error("network namespace must be the guest's")
			}
			if p, ok := m[specs.PIDNamespace]; !ok || p != *tc.wantPID {
				t.Errorf("pid ns %q (present %v), want %q", p, ok, *tc.wantPID)
			}
			if _, ok := m[specs.IPCNamespace]; ok != tc.wantIPC {
				t.Errorf("ipc ns present %v, want %v", ok, tc.wantIPC)
			}
			for _, want := range []specs.LinuxNamespaceType{specs.MountNamespace, specs.UTSNamespace} {
				if _, ok := m[want]; !ok {
					t.Errorf("missing %s namespace", want)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestMounts(t *testing.T) {
	ms, err := Mounts([]Mount{
		{ContainerPath: "/data/sub", GuestSource: "/g/sub", Propagation: runtime.MountPropagation_PROPAGATION_PRIVATE},
		{ContainerPath: "/data", GuestSource: "/g/data", Readonly: true, Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
		{ContainerPath: "/etc/hosts", GuestSource: "/g/hosts", Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL},
		{ContainerPath: "/rro", GuestSource: "/g/rro", Readonly: true, RecursiveReadOnly: true},
	}, "/run/podvisor/net", false)
	if err != nil {
		t.Fatal(err)
	}
	byDest := map[string]specs.Mount{}
	order := map[string]int{}
	for i, m := range ms {
		byDest[m.Destination] = m
		order[m.Destination] = i
	}
	if m := byDest["/etc/hosts"]; m.Source != "/g/hosts" || !slices.Contains(m.Options, "rshared") {
		t.Errorf("CRI mount must replace the pod's /etc/hosts: %+v", m)
	}
	if m := byDest["/etc/resolv.conf"]; m.Source != "/run/podvisor/net/resolv.conf" {
		t.Errorf("resolv.conf: %+v", m)
	}
	if m := byDest["/data"]; !slices.Contains(m.Options, "ro") || !slices.Contains(m.Options, "rslave") {
		t.Errorf("/data: %+v", m)
	}
	if m := byDest["/rro"]; !slices.Contains(m.Options, "rro") {
		t.Errorf("/rro: %+v", m)
	}
	if order["/data"] > order["/data/sub"] {
		t.Error("parent must be mounted before child")
	}
	if m := byDest["/sys"]; !slices.Contains(m.Options, "ro") {
		t.Errorf("/sys must be read-only unprivileged: %+v", m)
	}
	for _, tc := range []struct {
		name string
		m    Mount
		want string
	}{
		{"relative", Mount{ContainerPath: "data", GuestSource: "/g"}, "container_path"},
		{"rro rw", Mount{ContainerPath: "/x", GuestSource: "/g", RecursiveReadOnly: true}, "recursive_read_only needs readonly"},
		{"rro shared", Mount{ContainerPath: "/x", GuestSource: "/g", Readonly: true, RecursiveReadOnly: true, Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL}, "PROPAGATION_PRIVATE"},
	} {
		if _, err := Mounts([]Mount{tc.m}, "", false); err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	priv, _ := Mounts(nil, "", true)
	for _, m := range priv {
		if m.Destination == "/sys" && !slices.Contains(m.Options, "rw") {
			t.Errorf("privileged /sys: %+v", m)
		}
	}
}

func TestResources(t *testing.T) {
	if w := CPUWeight(2); w != 1 {
		t.Errorf("weight(2) = %d", w)
	}
	if w := CPUWeight(262144); w != 10000 {
		t.Errorf("weight(262144) = %d", w)
	}
	if w := CPUWeight(1024); w != 39 {
		t.Errorf("weight(1024) = %d", w)
	}
	r, err := Resources(&runtime.LinuxContainerResources{
		CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 1024, MemoryLimitInBytes: 64 << 20,
		CpusetCpus: "0", CpusetMems: "0", HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 1 << 21}},
		Unified: map[string]string{"memory.high": "max"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if *r.CPU.Period != 100000 || *r.CPU.Quota != 50000 || r.CPU.Cpus != "0" || r.Unified["cpu.weight"] != "39" ||
		*r.Memory.Limit != 64<<20 || r.HugepageLimits[0].Pagesize != "2MB" || r.Unified["memory.high"] != "max" {
		t.Errorf("resources: %+v", r)
	}
	for _, tc := range []struct {
		r     *runtime.LinuxContainerResources
		field string
	}{
		{&runtime.LinuxContainerResources{CpuPeriod: 10}, "cpu_period"},
		{&runtime.LinuxContainerResources{CpuQuota: 5}, "cpu_quota"},
		{&runtime.LinuxContainerResources{CpuShares: -1}, "cpu_shares"},
		{&runtime.LinuxContainerResources{MemoryLimitInBytes: -5}, "memory_limit_in_bytes"},
		{&runtime.LinuxContainerResources{OomScoreAdj: 1001}, "oom_score_adj"},
		{&runtime.LinuxContainerResources{HugepageLimits: []*runtime.HugepageLimit{{}}}, "hugepage_limits[0]"},
	} {
		if _, err := Resources(tc.r); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("err = %v, want one naming %s", err, tc.field)
		}
	}
}

func TestUserString(t *testing.T) {
	i64 := func(v int64) *runtime.Int64Value { return &runtime.Int64Value{Value: v} }
	for _, tc := range []struct {
		name      string
		sc        *runtime.LinuxContainerSecurityContext
		imageUser string
		want      string
		wantErr   bool
	}{
		{"image user", nil, "nobody", "nobody", false},
		{"no user is root", nil, "", "0", false},
		{"run as user", &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1000)}, "nobody", "1000", false},
		{"run as username", &runtime.LinuxContainerSecurityContext{RunAsUsername: "www"}, "nobody", "www", false},
		{"run as group", &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1000), RunAsGroup: i64(50)}, "", "1000:50", false},
		{"group without user", &runtime.LinuxContainerSecurityContext{RunAsGroup: i64(50)}, "nobody", "", true},
		{"negative uid", &runtime.LinuxContainerSecurityContext{RunAsUser: i64(-1)}, "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := UserString(tc.sc, tc.imageUser)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Fatalf("UserString = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	u, err := User(1000, 1000, []uint32{1000, 10}, &runtime.LinuxContainerSecurityContext{SupplementalGroups: []int64{20, 10}})
	if err != nil || !slices.Equal(u.AdditionalGids, []uint32{10, 20}) {
		t.Fatalf("User = %+v, %v", u, err)
	}
	u, _ = User(1000, 1000, []uint32{10}, &runtime.LinuxContainerSecurityContext{SupplementalGroups: []int64{20},
		SupplementalGroupsPolicy: runtime.SupplementalGroupsPolicy_Strict})
	if !slices.Equal(u.AdditionalGids, []uint32{20}) {
		t.Fatalf("strict policy: %v", u.AdditionalGids)
	}
}

func TestSeccomp(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "block-chmod.json")
	os.WriteFile(good, []byte(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod","fchmodat"],"action":"SCMP_ACT_ERRNO"}]}`), 0o644)
	docker := filepath.Join(dir, "docker.json")
	os.WriteFile(docker, []byte(`{"defaultAction":"SCMP_ACT_ERRNO","archMap":[{"architecture":"SCMP_ARCH_X86_64"}],"syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`), 0o644)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"defaultAction":"SCMP_ACT_EXPLODE"}`), 0o644)
	for _, tc := range []struct {
		name       string
		p          *runtime.SecurityProfile
		legacy     string
		privileged bool
		want       string // "", "default", or a syscall name the profile must name
		wantErr    bool
	}{
		{name: "nil is unconfined"},
		{name: "unconfined", p: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}},
		{name: "runtime default", p: &runtime.SecurityProfile{}, want: "default"},
		{name: "privileged ignores profile", p: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: bad}, privileged: true},
		{name: "localhost", p: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: good}, want: "chmod"},
		{name: "docker format", p: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: docker}, want: "read"},
		{name: "invalid action", p: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: bad}, wantErr: true},
		{name: "missing", p: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: filepath.Join(dir, "nope")}, wantErr: true},
		{name: "relative", p: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "x.json"}, wantErr: true},
		{name: "legacy default", legacy: "runtime/default", want: "default"},
		{name: "legacy localhost", legacy: "localhost/" + good, want: "chmod"},
		{name: "legacy junk", legacy: "whatever", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Seccomp(tc.p, tc.legacy, tc.privileged)
			if tc.wantErr {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("err = %v, want InvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch tc.want {
			case "":
				if s != nil {
					t.Fatalf("profile %+v, want none", s)
				}
			case "default":
				if s == nil || s.DefaultAction != specs.ActAllow || !slices.Contains(s.Syscalls[0].Names, "kexec_load") {
					t.Fatalf("default profile %+v", s)
				}
			default:
				if s == nil || !slices.Contains(s.Syscalls[0].Names, tc.want) || len(s.Architectures) == 0 && tc.want == "read" {
					t.Fatalf("profile %+v", s)
				}
			}
		})
	}
}

func TestBuild(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		s, err := Build(baseInput())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(s.Process.Args, []string{"sh"}) || s.Process.Cwd != "/" || s.Hostname != "pod-host" ||
			s.Root.Path != "/run/podvisor/shared/containers/c1/rootfs" || s.Root.Readonly || s.Linux.CgroupsPath != "/podvisor/c1" {
			t.Errorf("spec: %+v", s)
		}
		if !slices.Equal(s.Linux.MaskedPaths, DefaultMaskedPaths) || !slices.Equal(s.Linux.ReadonlyPaths, DefaultReadonlyPaths) {
			t.Error("default masked/readonly paths missing")
		}
		if s.Linux.Resources.Devices[0].Allow {
			t.Error("devices must be denied by default")
		}
		if s.Process.NoNewPrivileges {
			t.Error("no_new_privs unset must stay false")
		}
	})
	t.Run("privileged", func(t *testing.T) {
		in := baseInput()
		in.Config.Linux.SecurityContext.Privileged = true
		in.Sandbox.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{Privileged: true}}
		in.Seccomp = DefaultSeccomp()
		s, err := Build(in)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Linux.MaskedPaths) != 0 || len(s.Linux.ReadonlyPaths) != 0 || s.Linux.Seccomp != nil ||
			!s.Linux.Resources.Devices[0].Allow || len(s.Process.Capabilities.Bounding) != len(allCapabilities) {
			t.Errorf("privileged spec: %+v", s.Linux)
		}
	})
	t.Run("privileged container in unprivileged pod", func(t *testing.T) {
		in := baseInput()
		in.Config.Linux.SecurityContext.Privileged = true
		if _, err := Build(in); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("security context", func(t *testing.T) {
		in := baseInput()
		sc := in.Config.Linux.SecurityContext
		sc.ReadonlyRootfs = true
		sc.NoNewPrivs = true
		sc.MaskedPaths = []string{"/proc/x"}
		sc.ReadonlyPaths = []string{"/proc/y"}
		in.Config.WorkingDir = "/work"
		in.Config.Tty = true
		in.Config.Linux.Resources = &runtime.LinuxContainerResources{OomScoreAdj: 500, MemoryLimitInBytes: 1 << 20}
		s, err := Build(in)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Root.Readonly || !s.Process.NoNewPrivileges || !slices.Equal(s.Linux.MaskedPaths, []string{"/proc/x"}) ||
			!slices.Equal(s.Linux.ReadonlyPaths, []string{"/proc/y"}) || s.Process.Cwd != "/work" || !s.Process.Terminal ||
			*s.Process.OOMScoreAdj != 500 || *s.Linux.Resources.Memory.Limit != 1<<20 || s.Linux.Resources.Devices == nil {
			t.Errorf("spec: %+v %+v", s.Process, s.Linux)
		}
	})
	t.Run("host devices refused", func(t *testing.T) {
		in := baseInput()
		in.Config.Devices = []*runtime.Device{{HostPath: "/dev/kvm", ContainerPath: "/dev/kvm"}}
		if _, err := Build(in); err == nil || !strings.Contains(err.Error(), "devices[0]") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("host network refused", func(t *testing.T) {
		in := baseInput()
		in.Config.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE}
		if _, err := Build(in); err == nil || !strings.Contains(err.Error(), "linux.security_context.namespace_options.network") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestPodHostname(t *testing.T) {
	long := strings.Repeat("a", 62) + "-bcdef"
	for _, tc := range []struct {
		cfg  *runtime.PodSandboxConfig
		want string
	}{
		{&runtime.PodSandboxConfig{Hostname: "web", Metadata: &runtime.PodSandboxMetadata{Name: "pod"}}, "web"},
		{&runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Name: "pod"}}, "pod"},
		// 68 characters, as critest's pod names are: cut to 63, no
		// trailing dash.
		{&runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Name: long}}, strings.Repeat("a", 62)},
	} {
		if got := PodHostname(tc.cfg); got != tc.want {
			t.Errorf("PodHostname(%q, %q) = %q, want %q", tc.cfg.Hostname, tc.cfg.GetMetadata().GetName(), got, tc.want)
		}
	}
}
