package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/podvisor/podvisor/cri"
)

func TestDefaultConfigRoundTrips(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"config", "default"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"default_vcpus", "guest_dir", "driver", "mirrors", "conf_dir", "bin_dirs", "requests_per_second", "burst", "address", "socket_path", "plugin_request_timeout"} {
		if !strings.Contains(out.String(), key) {
			t.Errorf("default config lacks %s", key)
		}
	}
	p := filepath.Join(t.TempDir(), "podvisor.toml")
	os.WriteFile(p, out.Bytes(), 0o600)
	cfg, err := loadConfig(p, "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, cri.DefaultConfig()) {
		t.Fatalf("round trip: %+v", cfg)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, toml, wantErr string
		check               func(cri.Config) bool
	}{
		{"mirrors", `[registry.mirrors."docker.io"]
endpoints = [{ url = "http://127.0.0.1:5000", plain_http = true }]`, "", func(c cri.Config) bool {
			m := c.Registry.Mirrors["docker.io"].Endpoints
			return len(m) == 1 && m[0].PlainHTTP && c.Sandbox.DefaultVCPUs == 1
		}},
		{"unknown key", "[sandbox]\nvcpus = 2\n", "vcpus", nil},
		{"invalid driver", "[podvm]\ndriver = 'firecracker'\n", "podvm.driver", nil},
		{"bad duration", "[podvm]\nboot_timeout = 'soon'\n", "invalid duration", nil},
		{"nri off by default", "", "", func(c cri.Config) bool { return !c.NRI.Enable }},
		{"nri", "[nri]\nenable = true\nsocket_path = '/run/nri.sock'\nplugin_request_timeout = '10s'\n", "", func(c cri.Config) bool {
			return c.NRI.Enable && c.NRI.SocketPath == "/run/nri.sock" && c.NRI.RequestTimeout.Std().Seconds() == 10 && c.NRI.PluginPath == ""
		}},
		{"nri relative socket", "[nri]\nenable = true\nsocket_path = 'nri.sock'\n", "nri.socket_path", nil},
		{"nri zero timeout", "[nri]\nenable = true\nplugin_request_timeout = '0s'\n", "nri.plugin_request_timeout", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".toml")
			os.WriteFile(p, []byte(tc.toml), 0o600)
			cfg, err := loadConfig(p, "/guest")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !tc.check(cfg) || cfg.PodVM.GuestDir != "/guest" {
				t.Fatalf("cfg %+v err %v", cfg, err)
			}
		})
	}
}

func TestDaemonRefusesBadVMMAccount(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "podvisor.toml")
	os.WriteFile(conf, []byte("[podvm]\ndriver = \"qemu\"\nvmm_user = \"no-such-account-here\"\n"), 0o600)
	var out bytes.Buffer
	err := run(context.Background(), []string{"--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"),
		"--config", conf, "--guest-dir", filepath.Join(dir, "guest"),
		"--address", filepath.Join(dir, "state", "s.sock")}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "no-such-account-here") {
		t.Fatalf("err = %v", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, "state", "s.sock")); serr == nil {
		t.Fatal("socket created although the daemon cannot serve")
	}
}
