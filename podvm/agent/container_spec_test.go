package agent

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

var testPaths = specPaths{shared: "/run/podvisor/shared", net: "/run/podvisor/net"}

func goodSpec() *specs.Spec {
	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "/run/podvisor/shared/containers/c1/rootfs"},
		Process: &specs.Process{Args: []string{"sh"}, Cwd: "/", Env: []string{"A=b"}},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/etc/hosts", Type: "bind", Source: "/run/podvisor/net/hosts", Options: []string{"rbind"}},
			{Destination: "/data", Source: "/run/podvisor/shared/volumes/v", Options: []string{"bind", "ro"}},
		},
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace, Path: "/proc/12/ns/ipc"}}},
	}
}

func TestValidateSpec(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*specs.Spec)
		field  string // "" means valid
	}{
		{"valid", func(*specs.Spec) {}, ""},
		{"no version", func(s *specs.Spec) { s.Version = "" }, "ociVersion"},
		{"hooks", func(s *specs.Spec) { s.Hooks = &specs.Hooks{} }, "hooks"},
		{"no process", func(s *specs.Spec) { s.Process = nil }, "process"},
		{"no args", func(s *specs.Spec) { s.Process.Args = nil }, "process.args"},
		{"relative cwd", func(s *specs.Spec) { s.Process.Cwd = "x" }, "process.cwd"},
		{"bad env", func(s *specs.Spec) { s.Process.Env = []string{"=x"} }, "process.env[0]"},
		{"no root", func(s *specs.Spec) { s.Root = nil }, "root.path"},
		{"root elsewhere", func(s *specs.Spec) { s.Root.Path = "/" }, "root.path"},
		{"root of another container", func(s *specs.Spec) { s.Root.Path = "/run/podvisor/shared/containers/c2/rootfs" }, "root.path"},
		{"root escapes", func(s *specs.Spec) { s.Root.Path = "/run/podvisor/shared/containers/c1/../c2/rootfs" }, "root.path"},
		{"root is the container dir", func(s *specs.Spec) { s.Root.Path = "/run/podvisor/shared/containers/c1" }, "root.path"},
		{"bind of guest file", func(s *specs.Spec) { s.Mounts[1].Source = "/etc/passwd" }, "mounts[1].source"},
		{"bind escapes share", func(s *specs.Spec) { s.Mounts[2].Source = "/run/podvisor/shared/../bundles" }, "mounts[2].source"},
		{"bind of the net dir itself", func(s *specs.Spec) { s.Mounts[1].Source = "/run/podvisor/net" }, "mounts[1].source"},
		{"block device mount", func(s *specs.Spec) { s.Mounts[0].Type = "ext4" }, "mounts[0].type"},
		{"relative destination", func(s *specs.Spec) { s.Mounts[0].Destination = "proc" }, "mounts[0].destination"},
		{"destination with ..", func(s *specs.Spec) { s.Mounts[0].Destination = "/a/../etc" }, "mounts[0].destination"},
		{"no linux", func(s *specs.Spec) { s.Linux = nil }, "linux"},
		{"namespace path", func(s *specs.Spec) { s.Linux.Namespaces[1].Path = "/run/netns/x" }, "namespaces[1].path"},
		{"systemd cgroup", func(s *specs.Spec) { s.Linux.CgroupsPath = "system.slice:podvisor:c1" }, "cgroupsPath"},
		{"cgroup outside parent", func(s *specs.Spec) { s.Linux.CgroupsPath = "/c1" }, "cgroupsPath"},
		{"cgroup unclean", func(s *specs.Spec) { s.Linux.CgroupsPath = "/podvisor/../c1" }, "cgroupsPath"},
		{"console size without terminal", func(s *specs.Spec) { s.Process.ConsoleSize = &specs.Box{Height: 1} }, "consoleSize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := goodSpec()
			tt.mutate(s)
			err := validateSpec("c1", s, testPaths)
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("err = %v, want InvalidArgument naming %s", err, tt.field)
			}
		})
	}
}

func TestValidateSpecDefaultsCgroup(t *testing.T) {
	s := goodSpec()
	if err := validateSpec("c1", s, testPaths); err != nil {
		t.Fatal(err)
	}
	if s.Linux.CgroupsPath != "/podvisor/c1" {
		t.Fatalf("cgroupsPath = %q", s.Linux.CgroupsPath)
	}
}

func TestValidateCreateRequest(t *testing.T) {
	svc := &Service{cfg: Config{Containers: ContainerConfig{}.withDefaults()}}
	good, _ := json.Marshal(goodSpec())
	tests := []struct {
		name  string
		req   *agentpb.CreateContainerRequest
		field string
	}{
		{"valid", &agentpb.CreateContainerRequest{Id: "c1", BundleSpec: good}, ""},
		{"bad id", &agentpb.CreateContainerRequest{Id: "../x", BundleSpec: good}, "id"},
		{"empty spec", &agentpb.CreateContainerRequest{Id: "c1"}, "bundle_spec"},
		{"not json", &agentpb.CreateContainerRequest{Id: "c1", BundleSpec: []byte("{")}, "bundle_spec"},
		{"unknown field", &agentpb.CreateContainerRequest{Id: "c1", BundleSpec: []byte(`{"ociVersion":"1","bogus":1}`)}, "bundle_spec"},
		{"trailing data", &agentpb.CreateContainerRequest{Id: "c1", BundleSpec: append(append([]byte{}, good...), []byte("{}")...)}, "bundle_spec"},
		{"too large", &agentpb.CreateContainerRequest{Id: "c1", BundleSpec: make([]byte, maxSpecSize+1)}, "bundle_spec"},
		{"terminal mismatch", &agentpb.CreateContainerRequest{Id: "c1", BundleSpec: good, Terminal: true}, "terminal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.validateCreate(tt.req)
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidArgument) || !strings.HasPrefix(err.Error(), tt.field) {
				t.Fatalf("err = %v, want InvalidArgument naming %s", err, tt.field)
			}
		})
	}
}

func TestValidateExecRequest(t *testing.T) {
	proc, _ := json.Marshal(&specs.Process{Args: []string{"sh"}, Cwd: "/", Terminal: true})
	if _, err := validateExec(&agentpb.ExecProcessRequest{ContainerId: "c1", Id: "e1", Process: proc, Terminal: true}); err != nil {
		t.Fatal(err)
	}
	for name, req := range map[string]*agentpb.ExecProcessRequest{
		"container_id": {ContainerId: "", Id: "e1", Process: proc, Terminal: true},
		"id":           {ContainerId: "c1", Id: "", Process: proc, Terminal: true},
		"process":      {ContainerId: "c1", Id: "e1", Process: []byte(`{"args":[]}`)},
		"terminal":     {ContainerId: "c1", Id: "e1", Process: proc},
		"stderr":       {ContainerId: "c1", Id: "e1", Process: proc, Terminal: true, Stderr: true},
	} {
		_, err := validateExec(req)
		if !errors.Is(err, ErrInvalidArgument) || !strings.HasPrefix(err.Error(), name) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// TestResolveSpecPaths checks that a symlink in the share cannot point
// runc at the guest's own files.
func TestResolveSpecPaths(t *testing.T) {
	dir := t.TempDir()
	paths := specPaths{shared: filepath.Join(dir, "shared"), net: filepath.Join(dir, "net")}
	rootfs := filepath.Join(paths.shared, "containers", "c1", "rootfs")
	for _, d := range []string{rootfs, paths.net, filepath.Join(dir, "secret")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "secret"), filepath.Join(paths.shared, "evil")); err != nil {
		t.Fatal(err)
	}
	s := goodSpec()
	s.Root.Path = rootfs
	s.Mounts = []specs.Mount{{Destination: "/x", Type: "bind", Source: filepath.Join(paths.shared, "evil")}}
	if err := validateSpec("c1", s, paths); err != nil {
		t.Fatal(err)
	}
	err := resolveSpecPaths("c1", s, paths)
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "mounts[0].source") {
		t.Fatalf("err = %v, want the symlinked source refused", err)
	}
	s.Mounts = nil
	if err := resolveSpecPaths("c1", s, paths); err != nil {
		t.Fatal(err)
	}
}
