package agent

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

func goodNetwork() *agentpb.NetworkConfig {
	return &agentpb.NetworkConfig{
		Interfaces: []*agentpb.Interface{{Mac: "02:00:00:00:00:01", Name: "eth0", Mtu: 1450, Addresses: []string{"10.1.0.5/24", "fd00::5/64"}}},
		Routes: []*agentpb.Route{
			{Gateway: "10.1.0.1", InterfaceMac: "02:00:00:00:00:01"},
			{Destination: "10.2.0.0/16", InterfaceMac: "02:00:00:00:00:01"},
			{Gateway: "fd00::1"},
		},
		Dns:      &agentpb.DNS{Servers: []string{"10.96.0.10"}, Searches: []string{"ns.svc.cluster.local", "cluster.local"}, Options: []string{"ndots:5"}},
		Hostname: "pod-1",
		Sysctls:  []*agentpb.Sysctl{{Key: "net.ipv4.ip_forward", Value: "1"}, {Key: "kernel.shmmax", Value: "1000"}, {Key: "kernel.sem", Value: "250 32000 32 128"}},
	}
}

func TestValidateNetwork(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*agentpb.NetworkConfig)
		field  string
	}{
		{"valid", func(*agentpb.NetworkConfig) {}, ""},
		{"empty", func(c *agentpb.NetworkConfig) { proto.Reset(c) }, ""},
		{"bad mac", func(c *agentpb.NetworkConfig) { c.Interfaces[0].Mac = "zz" }, "interfaces[0].mac"},
		{"8-byte mac", func(c *agentpb.NetworkConfig) { c.Interfaces[0].Mac = "02:00:00:00:00:00:00:01" }, "interfaces[0].mac"},
		{"duplicate mac", func(c *agentpb.NetworkConfig) {
			c.Interfaces = append(c.Interfaces, &agentpb.Interface{Mac: "02:00:00:00:00:01", Name: "eth1"})
		}, "interfaces[1].mac"},
		{"long name", func(c *agentpb.NetworkConfig) { c.Interfaces[0].Name = strings.Repeat("a", 16) }, "interfaces[0].name"},
		{"name with slash", func(c *agentpb.NetworkConfig) { c.Interfaces[0].Name = "a/b" }, "interfaces[0].name"},
		{"lo", func(c *agentpb.NetworkConfig) { c.Interfaces[0].Name = "lo" }, "interfaces[0].name"},
		{"mtu", func(c *agentpb.NetworkConfig) { c.Interfaces[0].Mtu = 10 }, "interfaces[0].mtu"},
		{"address", func(c *agentpb.NetworkConfig) { c.Interfaces[0].Addresses[1] = "10.1.0.5" }, "interfaces[0].addresses[1]"},
		{"route dst", func(c *agentpb.NetworkConfig) { c.Routes[1].Destination = "x" }, "routes[1].destination"},
		{"route gw", func(c *agentpb.NetworkConfig) { c.Routes[0].Gateway = "x" }, "routes[0].gateway"},
		{"route family", func(c *agentpb.NetworkConfig) { c.Routes[1].Gateway = "fd00::1" }, "routes[1].gateway"},
		{"route unknown mac", func(c *agentpb.NetworkConfig) { c.Routes[1].InterfaceMac = "02:00:00:00:00:09" }, "routes[1].interface_mac"},
		{"default without gw", func(c *agentpb.NetworkConfig) { c.Routes[0].Gateway = "" }, "routes[0].gateway"},
		{"route nothing", func(c *agentpb.NetworkConfig) { c.Routes[2].Gateway = ""; c.Routes[2].Destination = "1.0.0.0/8" }, "routes[2]"},
		{"dns server", func(c *agentpb.NetworkConfig) { c.Dns.Servers[0] = "dns.google" }, "dns.servers[0]"},
		{"4 dns servers", func(c *agentpb.NetworkConfig) { c.Dns.Servers = []string{"1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4"} }, "dns.servers"},
		{"search with space", func(c *agentpb.NetworkConfig) { c.Dns.Searches[0] = "a b" }, "dns.searches[0]"},
		{"search with newline", func(c *agentpb.NetworkConfig) { c.Dns.Searches[0] = "a\nnameserver 1.2.3.4" }, "dns.searches[0]"},
		{"option with newline", func(c *agentpb.NetworkConfig) { c.Dns.Options[0] = "ndots:5\nx" }, "dns.options[0]"},
		{"hostname", func(c *agentpb.NetworkConfig) { c.Hostname = "a_b" }, "hostname"},
		{"sysctl not namespaced", func(c *agentpb.NetworkConfig) { c.Sysctls[0].Key = "kernel.panic" }, "sysctls[0].key"},
		{"sysctl vm", func(c *agentpb.NetworkConfig) { c.Sysctls[0].Key = "vm.overcommit_memory" }, "sysctls[0].key"},
		{"sysctl traversal", func(c *agentpb.NetworkConfig) { c.Sysctls[0].Key = "net/../../kernel/panic" }, "sysctls[0].key"},
		{"sysctl dots", func(c *agentpb.NetworkConfig) { c.Sysctls[0].Key = "net..ipv4" }, "sysctls[0].key"},
		{"sysctl value slash", func(c *agentpb.NetworkConfig) { c.Sysctls[0].Value = "/bin/sh" }, "sysctls[0].value"},
		{"sysctl BPF JIT switch", func(c *agentpb.NetworkConfig) { c.Sysctls[0].Key = "net.core.bpf_jit_harden" }, "sysctls[0]"},
		{"sysctl value plus", func(c *agentpb.NetworkConfig) { c.Sysctls[0].Value = "+1" }, "sysctls[0].value"},
		{"sysctl value equals", func(c *agentpb.NetworkConfig) { c.Sysctls[0].Value = "a=b" }, "sysctls[0].value"},
		{"sysctl value newline", func(c *agentpb.NetworkConfig) { c.Sysctls[0].Value = "1\n" }, "sysctls[0].value"},
		{"sysctl value NUL", func(c *agentpb.NetworkConfig) { c.Sysctls[0].Value = "1\x00" }, "sysctls[0].value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := goodNetwork()
			tt.mutate(c)
			err := validateNetwork(c)
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidArgument) || !strings.HasPrefix(err.Error(), tt.field+":") {
				t.Fatalf("err = %v, want InvalidArgument naming %s", err, tt.field)
			}
		})
	}
}

func TestRenderNetFiles(t *testing.T) {
	c := goodNetwork()
	if got, want := renderResolvConf(c.Dns), "nameserver 10.96.0.10\nsearch ns.svc.cluster.local cluster.local\noptions ndots:5\n"; got != want {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", got, want)
	}
	hosts := renderHosts(c)
	for _, line := range []string{"127.0.0.1\tlocalhost\n", "10.1.0.5\tpod-1\n", "fd00::5\tpod-1\n"} {
		if !strings.Contains(hosts, line) {
			t.Errorf("hosts lacks %q:\n%s", line, hosts)
		}
	}
}
