package agent

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// Files the agent writes in ContainerConfig.NetDir for containers to
// bind-mount (at /etc/resolv.conf, /etc/hostname and /etc/hosts).
const (
	resolvConfFile = "resolv.conf"
	hostnameFile   = "hostname"
	hostsFile      = "hosts"
)

// renderResolvConf writes resolv.conf(5) from validated DNS settings.
func renderResolvConf(d *agentpb.DNS) string {
	var b strings.Builder
	for _, s := range d.GetServers() {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(d.GetSearches()) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(d.GetSearches(), " "))
	}
	if len(d.GetOptions()) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(d.GetOptions(), " "))
	}
	return b.String()
}

// renderHosts writes hosts(5): localhost, and the pod's own addresses
// under its hostname.
func renderHosts(cfg *agentpb.NetworkConfig) string {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	if h := cfg.GetHostname(); h != "" {
		for _, itf := range cfg.GetInterfaces() {
			for _, a := range itf.GetAddresses() {
				if p, err := netip.ParsePrefix(a); err == nil {
					fmt.Fprintf(&b, "%s\t%s\n", p.Addr(), h)
				}
			}
		}
	}
	return b.String()
}

// writeNetFiles writes the three files into dir, each atomically (a
// container bind-mounts the file; a rename would leave the container on
// the old inode, so the content is rewritten in place when the file
// exists, and created by rename otherwise).
func writeNetFiles(dir string, cfg *agentpb.NetworkConfig) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	hostname := cfg.GetHostname()
	if hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return err
		}
		hostname = h
	}
	files := []struct{ name, data string }{
		{resolvConfFile, renderResolvConf(cfg.GetDns())},
		{hostnameFile, hostname + "\n"},
		{hostsFile, renderHosts(cfg)},
	}
	for _, f := range files {
		if err := writeNetFile(filepath.Join(dir, f.name), f.data); err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	return nil
}

func writeNetFile(path, data string) error {
	if _, err := os.Stat(path); err == nil {
		return os.WriteFile(path, []byte(data), 0o644)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
