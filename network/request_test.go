package network

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func validRequest() PodRequest {
	return PodRequest{ID: strings.Repeat("ab", 32), Name: "web-0", Namespace: "default", UID: "4f1c-77"}
}

func TestPodRequestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*PodRequest)
		ok     bool
	}{
		{"valid", func(*PodRequest) {}, true},
		{"short id", func(r *PodRequest) { r.ID = "pod1" }, true},
		{"empty id", func(r *PodRequest) { r.ID = "" }, false},
		{"id with slash", func(r *PodRequest) { r.ID = "a/b" }, false},
		{"id dotdot", func(r *PodRequest) { r.ID = ".." }, false},
		{"id too long", func(r *PodRequest) { r.ID = strings.Repeat("a", 129) }, false},
		{"empty name", func(r *PodRequest) { r.Name = "" }, false},
		{"name with semicolon", func(r *PodRequest) { r.Name = "a;K8S_POD_NAME=b" }, false},
		{"namespace with equals", func(r *PodRequest) { r.Namespace = "a=b" }, false},
		{"uid with newline", func(r *PodRequest) { r.UID = "a\nb" }, false},
		{"port mapping ok", func(r *PodRequest) {
			r.PortMappings = []PortMapping{{Protocol: "UDP", ContainerPort: 53, HostPort: 5353, HostIP: "127.0.0.1"}}
		}, true},
		{"bad protocol", func(r *PodRequest) { r.PortMappings = []PortMapping{{Protocol: "ICMP", ContainerPort: 1}} }, false},
		{"container port 0", func(r *PodRequest) { r.PortMappings = []PortMapping{{ContainerPort: 0}} }, false},
		{"host port too big", func(r *PodRequest) { r.PortMappings = []PortMapping{{ContainerPort: 80, HostPort: 70000}} }, false},
		{"bad host ip", func(r *PodRequest) { r.PortMappings = []PortMapping{{ContainerPort: 80, HostPort: 80, HostIP: "nope"}} }, false},
		{"hostname with slash", func(r *PodRequest) { r.Hostname = "a/b" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRequest()
			tt.mutate(&r)
			err := r.validate()
			if (err == nil) != tt.ok {
				t.Fatalf("validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("error %v is not ErrInvalidArgument", err)
			}
		})
	}
}

func TestRuntimeConf(t *testing.T) {
	req := validRequest()
	req.PortMappings = []PortMapping{
		{Protocol: "TCP", ContainerPort: 80, HostPort: 8080},
		{Protocol: "", ContainerPort: 81}, // no host port: not forwarded
		{Protocol: "SCTP", ContainerPort: 90, HostPort: 9090, HostIP: "::1"},
	}
	req.DNS = &DNS{Servers: []string{"10.96.0.10"}, Searches: []string{"default.svc.cluster.local"}, Options: []string{"ndots:5"}}
	rt := runtimeConf(req, "/run/ns/x", "eth0")

	if rt.ContainerID != req.ID || rt.NetNS != "/run/ns/x" || rt.IfName != "eth0" {
		t.Errorf("rt = %+v", rt)
	}
	wantArgs := [][2]string{
		{"IgnoreUnknown", "1"},
		{"K8S_POD_NAMESPACE", "default"},
		{"K8S_POD_NAME", "web-0"},
		{"K8S_POD_INFRA_CONTAINER_ID", req.ID},
		{"K8S_POD_UID", "4f1c-77"},
	}
	if !reflect.DeepEqual(rt.Args, wantArgs) {
		t.Errorf("Args = %v, want %v", rt.Args, wantArgs)
	}
	// Plugins see the capability args as JSON in runtimeConfig.
	got, err := json.Marshal(rt.CapabilityArgs)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"dns":{"servers":["10.96.0.10"],"searches":["default.svc.cluster.local"],"options":["ndots:5"]},` +
		`"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},{"hostPort":9090,"containerPort":90,"protocol":"sctp","hostIP":"::1"}]}`
	if string(got) != want {
		t.Errorf("CapabilityArgs = %s\nwant %s", got, want)
	}
}

func TestRuntimeConfNoCapabilities(t *testing.T) {
	req := validRequest()
	req.PortMappings = []PortMapping{{ContainerPort: 80}}
	if rt := runtimeConf(req, "", "eth0"); len(rt.CapabilityArgs) != 0 {
		t.Errorf("CapabilityArgs = %v, want none", rt.CapabilityArgs)
	}
}
