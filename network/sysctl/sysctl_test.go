package sysctl

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		sysctls map[string]string
		badKey  string // "" means valid
	}{
		{"none", nil, ""},
		{"safe set", map[string]string{
			"net.ipv4.ip_local_port_range": "1024 65000",
			"net.ipv4.ping_group_range":    "0 2147483647",
			"kernel.shm_rmid_forced":       "1",
			"kernel.shmmax":                "68719476736",
			"kernel.msgmax":                "65536",
			"kernel.sem":                   "250 32000 100 128",
			"fs.mqueue.msg_max":            "100",
			"net.ipv6.conf.all.forwarding": "1",
		}, ""},
		{"host-wide kernel", map[string]string{"kernel.panic": "1"}, "kernel.panic"},
		{"kernel.sem prefix only exact", map[string]string{"kernel.semx": "1"}, "kernel.semx"},
		{"vm", map[string]string{"vm.overcommit_memory": "1"}, "vm.overcommit_memory"},
		{"fs non mqueue", map[string]string{"fs.file-max": "1"}, "fs.file-max"},
		{"bare net", map[string]string{"net": "1"}, "net"},
		{"denied bpf jit", map[string]string{"net.core.bpf_jit_harden": "0"}, "net.core.bpf_jit_harden"},
		{"dotdot", map[string]string{"net..ipv4": "1"}, "net..ipv4"},
		{"trailing dot", map[string]string{"net.ipv4.": "1"}, "net.ipv4."},
		{"slash in key", map[string]string{"net/ipv4/ip_forward": "1"}, "net/ipv4/ip_forward"},
		{"space in key", map[string]string{"net.ipv4.ip forward": "1"}, "net.ipv4.ip forward"},
		{"glob in key", map[string]string{"net.ipv4.*": "1"}, "net.ipv4.*"},
		{"value plus", map[string]string{"kernel.shmmax": "1+1"}, "kernel.shmmax"},
		{"value equals", map[string]string{"kernel.shmmax": "a=b"}, "kernel.shmmax"},
		{"value slash", map[string]string{"net.ipv4.tcp_congestion_control": "../x"}, "net.ipv4.tcp_congestion_control"},
		{"value newline", map[string]string{"net.ipv4.ip_forward": "1\n0"}, "net.ipv4.ip_forward"},
		{"value nul", map[string]string{"net.ipv4.ip_forward": "1\x00"}, "net.ipv4.ip_forward"},
		{"empty value", map[string]string{"net.ipv4.ip_forward": ""}, "net.ipv4.ip_forward"},
		{"first bad key reported in order", map[string]string{"vm.b": "1", "vm.a": "1"}, "vm.a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.sysctls)
			if tt.badKey == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"`+tt.badKey+`"`) {
				t.Fatalf("Validate() = %v, want ErrInvalid naming %q", err, tt.badKey)
			}
		})
	}
}
