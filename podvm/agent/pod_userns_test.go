package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

var testMapping = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 100000}}

// usernsSpec is a container of a pod with a user namespace: it joins the
// holder's user namespace with its mappings, and binds the guest's /sys.
func usernsSpec() *specs.Spec {
	s := goodSpec()
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: "/proc/12/ns/user"})
	s.Linux.UIDMappings, s.Linux.GIDMappings = testMapping, testMapping
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "rro"}})
	return s
}

func TestValidateSpecUserns(t *testing.T) {
	for _, tt := range []struct {
		name   string
		mutate func(*specs.Spec)
		field  string // "" means valid
	}{
		{"valid", func(*specs.Spec) {}, ""},
		{"new user namespace", func(s *specs.Spec) { s.Linux.Namespaces[2].Path = "" }, "namespaces[2].path"},
		{"no uid mappings", func(s *specs.Spec) { s.Linux.UIDMappings = nil }, "uidMappings"},
		{"empty gid range", func(s *specs.Spec) { s.Linux.GIDMappings = []specs.LinuxIDMapping{{HostID: 1000}} }, "gidMappings[0]"},
		{"range reaching -1", func(s *specs.Spec) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 1 << 31, Size: 1 << 31}}
		}, "uidMappings[0]"},
		{"writable sys", func(s *specs.Spec) { s.Mounts[3].Options = []string{"rbind", "ro"} }, "mounts[3].source"},
		{"sys elsewhere", func(s *specs.Spec) { s.Mounts[3].Destination = "/host-sys" }, "mounts[3].source"},
		{"sys without user namespace", func(s *specs.Spec) {
			s.Linux.Namespaces = s.Linux.Namespaces[:2]
			s.Linux.UIDMappings, s.Linux.GIDMappings = nil, nil
		}, "mounts[3].source"},
		{"mappings without user namespace", func(s *specs.Spec) {
			s.Linux.Namespaces = s.Linux.Namespaces[:2]
			s.Mounts = s.Mounts[:3]
		}, "uidMappings"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := usernsSpec()
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

func TestCheckJoinedUserns(t *testing.T) {
	dir := t.TempDir()
	proc := filepath.Join(dir, "proc", "12")
	if err := os.MkdirAll(proc, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"uid_map", "gid_map"} {
		if err := os.WriteFile(filepath.Join(proc, f), []byte("         0       1000     100000\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l := &specs.Linux{UIDMappings: testMapping, GIDMappings: testMapping}
	ns := filepath.Join(proc, "ns", "user")
	if err := checkJoinedUserns(l, ns); err != nil {
		t.Fatal(err)
	}
	l.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 2000, Size: 100000}}
	if err := checkJoinedUserns(l, ns); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "gid_map") {
		t.Fatalf("other gid map: %v", err)
	}
	if err := checkJoinedUserns(l, filepath.Join(dir, "proc", "13", "ns", "user")); !errors.Is(err, ErrFailedPrecondition) {
		t.Fatalf("gone holder: %v", err)
	}
}

func TestRequestMappings(t *testing.T) {
	m, err := requestMappings(&agentpb.PodPIDNamespaceRequest{})
	if err != nil || !m.zero() {
		t.Fatalf("no mappings: %+v %v", m, err)
	}
	one := []*agentpb.IDMapping{{ContainerId: 0, HostId: 1000, Size: 100000}}
	m, err = requestMappings(&agentpb.PodPIDNamespaceRequest{UidMappings: one, GidMappings: one})
	if err != nil || !m.equal(idMappings{UIDs: testMapping, GIDs: testMapping}) {
		t.Fatalf("mappings: %+v %v", m, err)
	}
	if _, err := requestMappings(&agentpb.PodPIDNamespaceRequest{UidMappings: one}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("uids only: %v", err)
	}
	uids, gids := m.sysProcIDMaps()
	if len(uids) != 1 || uids[0].HostID != 1000 || uids[0].Size != 100000 || len(gids) != 1 {
		t.Fatalf("sysProcIDMaps %+v %+v", uids, gids)
	}
}
