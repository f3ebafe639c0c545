package network

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
)

// DefaultConflistName is the file DefaultConflist is installed as.
const DefaultConflistName = "10-podvisor.conflist"

// DefaultConflist is the network installed on hosts with no CNI config: a
// bridge with a host-local dual-stack range, masquerading, host ports with
// SNAT for hairpin traffic, and FORWARD accept rules for hosts whose
// policy drops. `make cni-default-config` writes it from this constant.
const DefaultConflist = `{
  "cniVersion": "1.0.0",
  "name": "podvisor",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "podvisor0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [
          [{ "subnet": "10.88.0.0/16" }],
          [{ "subnet": "fd70:6476:6973::/64" }]
        ],
        "routes": [
          { "dst": "0.0.0.0/0" },
          { "dst": "::/0" }
        ]
      }
    },
    {
      "type": "portmap",
      "capabilities": { "portMappings": true },
      "snat": true
    },
    {
      "type": "firewall"
    }
  ]
}
`

// WriteDefaultConflist installs DefaultConflist in confDir unless the
// directory already holds a network config, which is never touched. It
// reports whether it wrote the file.
func WriteDefaultConflist(confDir string) (bool, error) {
	existing, err := libcni.ConfFiles(confDir, confExtensions)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", confDir, err)
	}
	if len(existing) > 0 {
		return false, nil
	}
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return false, err
	}
	path := filepath.Join(confDir, DefaultConflistName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return false, err
	}
	_, err = f.WriteString(DefaultConflist)
	if err = errors.Join(err, f.Close()); err != nil {
		_ = os.Remove(path)
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}
