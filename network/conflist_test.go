package network

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

const (
	bridgeList = `{"cniVersion":"1.0.0","name":"%s","plugins":[{"type":"bridge","bridge":"b0"},{"type":"portmap","capabilities":{"portMappings":true}}]}`
	singleConf = `{"cniVersion":"0.4.0","name":"single","type":"bridge","bridge":"b1"}`
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadNetwork(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string
		wantFile string
		wantNet  string
		plugins  int
		wantErr  string
	}{
		{name: "empty dir", wantErr: "no network config found"},
		{
			name:     "first by name wins",
			files:    map[string]string{"20-b.conflist": strings.Replace(bridgeList, "%s", "b", 1), "10-a.conflist": strings.Replace(bridgeList, "%s", "a", 1)},
			wantFile: "10-a.conflist", wantNet: "a", plugins: 2,
		},
		{
			name:     "other extensions ignored",
			files:    map[string]string{"00-x.txt": "junk", "50-a.conflist": strings.Replace(bridgeList, "%s", "a", 1)},
			wantFile: "50-a.conflist", wantNet: "a", plugins: 2,
		},
		{
			name:     "single plugin conf wrapped",
			files:    map[string]string{"05-single.conf": singleConf, "10-a.conflist": strings.Replace(bridgeList, "%s", "a", 1)},
			wantFile: "05-single.conf", wantNet: "single", plugins: 1,
		},
		{
			name:    "invalid first file is not skipped",
			files:   map[string]string{"01-bad.conflist": "{", "10-a.conflist": strings.Replace(bridgeList, "%s", "a", 1)},
			wantErr: "01-bad.conflist",
		},
		{
			name:    "conflist without plugins",
			files:   map[string]string{"10-a.conflist": `{"cniVersion":"1.0.0","name":"a","plugins":[]}`},
			wantErr: "no plugins",
		},
		{
			name:    "conflist without name",
			files:   map[string]string{"10-a.conflist": `{"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}`},
			wantErr: "no name",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			net, err := loadNetwork(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrNotReady) {
					t.Fatalf("loadNetwork() error = %v, want ErrNotReady containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(net.File) != tt.wantFile || net.List.Name != tt.wantNet || len(net.List.Plugins) != tt.plugins {
				t.Errorf("got %s network %q with %d plugins, want %s %q with %d", filepath.Base(net.File), net.List.Name, len(net.List.Plugins), tt.wantFile, tt.wantNet, tt.plugins)
			}
		})
	}
}

func TestLoadNetworkMissingDir(t *testing.T) {
	_, err := loadNetwork(filepath.Join(t.TempDir(), "absent"))
	if !errors.Is(err, ErrNotReady) {
		t.Fatalf("error = %v, want ErrNotReady", err)
	}
}

// Plugins kept beside a conflist (CNI 1.1 <dir>/<network>/*.conf) must be
// inlined so the recorded config does not depend on them.
func TestLoadNetworkInlinesPluginFiles(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"10-a.conflist": `{"cniVersion":"1.1.0","name":"a","plugins":[{"type":"bridge"}]}`})
	if err := os.Mkdir(filepath.Join(dir, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, filepath.Join(dir, "a"), map[string]string{"20-tuning.conf": `{"type":"tuning"}`})
	net, err := loadNetwork(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	again, err := libcni.NetworkConfFromBytes(net.List.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, p := range again.Plugins {
		types = append(types, p.Network.Type)
	}
	if strings.Join(types, ",") != "bridge,tuning" {
		t.Errorf("recorded plugins = %v, want [bridge tuning]", types)
	}
}

func TestStatus(t *testing.T) {
	conf, bin := t.TempDir(), t.TempDir()
	m := &Manager{cfg: Config{ConfDir: conf, BinDirs: []string{bin}}}
	if st := m.Status(); st.Ready || st.Reason != ReasonNotReady || !strings.Contains(st.Message, "no network config") {
		t.Fatalf("empty conf dir: %+v", st)
	}
	writeFiles(t, conf, map[string]string{"10-a.conflist": strings.Replace(bridgeList, "%s", "a", 1)})
	if st := m.Status(); st.Ready || !strings.Contains(st.Message, `plugin "bridge"`) {
		t.Fatalf("missing plugin binaries: %+v", st)
	}
	for _, p := range []string{"bridge", "portmap"} {
		if err := os.WriteFile(filepath.Join(bin, p), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if st := m.Status(); !st.Ready || st.Network != "a" || filepath.Base(st.ConfFile) != "10-a.conflist" {
		t.Fatalf("ready: %+v", st)
	}
}

func TestDefaultConflist(t *testing.T) {
	dir := t.TempDir()
	wrote, err := WriteDefaultConflist(dir)
	if err != nil || !wrote {
		t.Fatalf("WriteDefaultConflist() = %v, %v", wrote, err)
	}
	net, err := loadNetwork(dir)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, p := range net.List.Plugins {
		types = append(types, p.Network.Type)
	}
	if net.List.Name != "podvisor" || strings.Join(types, ",") != "bridge,portmap,firewall" {
		t.Errorf("default network %q plugins %v", net.List.Name, types)
	}
	// A second run, or a dir with a foreign config, is left alone.
	if wrote, err := WriteDefaultConflist(dir); err != nil || wrote {
		t.Errorf("second WriteDefaultConflist() = %v, %v; want false, nil", wrote, err)
	}
	other := t.TempDir()
	writeFiles(t, other, map[string]string{"99-other.conf": singleConf})
	if wrote, err := WriteDefaultConflist(other); err != nil || wrote {
		t.Errorf("WriteDefaultConflist(foreign) = %v, %v; want false, nil", wrote, err)
	}
}
