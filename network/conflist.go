package network

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
)

// confExtensions are the file kinds containerd considers in the conf dir.
var confExtensions = []string{".conf", ".conflist", ".json"}

// network is the CNI network pods join: the first config file in the conf
// dir by name, turned into a self-contained conflist.
type network struct {
	File string
	List *libcni.NetworkConfigList
}

// loadNetwork reads the config dir on every call so a config that a CNI
// daemonset drops in after start-up is picked up without a restart. As in
// containerd, the first file by name decides: an invalid first file makes
// the network not ready instead of silently falling back to the next one.
func loadNetwork(confDir string) (*network, error) {
	files, err := libcni.ConfFiles(confDir, confExtensions)
	if err != nil {
		return nil, fmt.Errorf("read CNI conf dir %s: %v: %w", confDir, err, ErrNotReady)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no network config found in %s: %w", confDir, ErrNotReady)
	}
	sort.Strings(files)
	list, err := loadConfFile(files[0])
	if err != nil {
		return nil, fmt.Errorf("CNI config %s: %v: %w", files[0], err, ErrNotReady)
	}
	return &network{File: files[0], List: list}, nil
}

// loadConfFile parses a conflist, or a single-plugin .conf/.json wrapped as
// a one-plugin list, and returns it self-contained.
func loadConfFile(path string) (*libcni.NetworkConfigList, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var probe struct {
		Plugins json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	var list *libcni.NetworkConfigList
	if probe.Plugins != nil || filepath.Ext(path) == ".conflist" {
		list, err = libcni.NetworkConfFromFile(path)
	} else {
		list, err = singlePluginList(data)
	}
	if err != nil {
		return nil, err
	}
	if list.Name == "" {
		return nil, fmt.Errorf("network has no name")
	}
	return selfContained(list)
}

func singlePluginList(data []byte) (*libcni.NetworkConfigList, error) {
	plugin, err := libcni.NetworkPluginConfFromBytes(data)
	if err != nil {
		return nil, err
	}
	return &libcni.NetworkConfigList{
		Name:       plugin.Network.Name,
		CNIVersion: plugin.Network.CNIVersion,
		Plugins:    []*libcni.PluginConfig{plugin},
	}, nil
}

// selfContained re-encodes list with every plugin inline, so the bytes
// persisted for DEL do not depend on plugin files beside the conflist that
// may change or vanish before the pod is torn down.
func selfContained(list *libcni.NetworkConfigList) (*libcni.NetworkConfigList, error) {
	plugins := make([]json.RawMessage, len(list.Plugins))
	for i, p := range list.Plugins {
		plugins[i] = p.Bytes
	}
	raw, err := json.Marshal(struct {
		CNIVersion   string            `json:"cniVersion,omitempty"`
		Name         string            `json:"name"`
		DisableCheck bool              `json:"disableCheck,omitempty"`
		DisableGC    bool              `json:"disableGC,omitempty"`
		InlineOnly   bool              `json:"loadOnlyInlinedPlugins"`
		Plugins      []json.RawMessage `json:"plugins"`
	}{list.CNIVersion, list.Name, list.DisableCheck, list.DisableGC, true, plugins})
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(raw)
}

// checkBinaries reports the first plugin of list missing from binDirs.
func checkBinaries(list *libcni.NetworkConfigList, binDirs []string) error {
	for _, p := range list.Plugins {
		if _, err := invoke.FindInPath(p.Network.Type, binDirs); err != nil {
			return fmt.Errorf("plugin %q of network %q: %v: %w", p.Network.Type, list.Name, err, ErrNotReady)
		}
	}
	return nil
}
