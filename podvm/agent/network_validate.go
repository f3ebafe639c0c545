package agent

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"

	"github.com/podvisor/podvisor/network/sysctl"
	"github.com/podvisor/podvisor/podvm/agent/agentpb"
	"github.com/podvisor/podvisor/podvm/agent/initsys"
)

// Limits on a NetworkConfig. DNS limits follow kubelet's (glibc reads at
// most 3 name servers; 32 search domains of 2048 bytes in all).
const (
	maxInterfaces   = 16
	maxAddresses    = 64
	maxRoutes       = 256
	maxNameservers  = 3
	maxSearches     = 32
	maxSearchTotal  = 2048
	maxDNSOptions   = 32
	maxSysctls      = 128
	maxSysctlKeyLen = 256
	maxSysctlValLen = 4096
	minMTU          = 68
	maxMTU          = 65535
)

var (
	ifNamePattern   = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,14}$`)
	domainPattern   = regexp.MustCompile(`^[a-zA-Z0-9_]([a-zA-Z0-9_.-]{0,251}[a-zA-Z0-9_.])?$`)
	dnsOptPattern   = regexp.MustCompile(`^[a-zA-Z0-9_.:-]{1,64}$`)
	sysctlKeyFormat = regexp.MustCompile(`^[a-z0-9_-]+(\.[a-zA-Z0-9_-]+)+$`)
)

// sysctlPrefixes are the sysctls a pod may set: those namespaced per
// network or IPC namespace, as kubelet's safe and unsafe-but-namespaced
// lists. Inside the pod's own VM the guest kernel is the pod's, but a
// sysctl outside these could still break the agent itself.
var sysctlPrefixes = []string{"net.", "kernel.shm", "kernel.msg", "fs.mqueue."}

// validateNetwork checks every field of a NetworkConfig.
func validateNetwork(cfg *agentpb.NetworkConfig) error {
	macs := map[string]bool{}
	names := map[string]bool{}
	ifs := cfg.GetInterfaces()
	if len(ifs) > maxInterfaces {
		return invalid("interfaces", "%d entries, more than %d", len(ifs), maxInterfaces)
	}
	for i, itf := range ifs {
		field := fmt.Sprintf("interfaces[%d]", i)
		mac, err := parseMAC(itf.GetMac())
		if err != nil {
			return invalid(field+".mac", "%v", err)
		}
		if macs[mac] {
			return invalid(field+".mac", "%s appears twice", mac)
		}
		macs[mac] = true
		if !ifNamePattern.MatchString(itf.GetName()) || itf.GetName() == "lo" {
			return invalid(field+".name", "%q is not a valid interface name", truncate(itf.GetName(), 32))
		}
		if names[itf.GetName()] {
			return invalid(field+".name", "%q appears twice", itf.GetName())
		}
		names[itf.GetName()] = true
		if m := itf.GetMtu(); m != 0 && (m < minMTU || m > maxMTU) {
			return invalid(field+".mtu", "%d is not 0 or in %d..%d", m, minMTU, maxMTU)
		}
		if len(itf.GetAddresses()) > maxAddresses {
			return invalid(field+".addresses", "%d entries, more than %d", len(itf.GetAddresses()), maxAddresses)
		}
		for j, a := range itf.GetAddresses() {
			if _, err := netip.ParsePrefix(a); err != nil {
				return invalid(fmt.Sprintf("%s.addresses[%d]", field, j), "%q is not an address in CIDR notation", truncate(a, 64))
			}
		}
	}
	if err := validateRoutes(cfg.GetRoutes(), macs); err != nil {
		return err
	}
	if err := validateDNS(cfg.GetDns()); err != nil {
		return err
	}
	if h := cfg.GetHostname(); h != "" {
		if err := initsys.ValidateHostname(h); err != nil {
			return invalid("hostname", "%v", err)
		}
	}
	return validateSysctls(cfg.GetSysctls())
}

// parseMAC accepts a 6-byte unicast MAC and returns it in canonical form.
func parseMAC(s string) (string, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("%q is not a 6-byte MAC address", truncate(s, 32))
	}
	return hw.String(), nil
}

func validateRoutes(routes []*agentpb.Route, macs map[string]bool) error {
	if len(routes) > maxRoutes {
		return invalid("routes", "%d entries, more than %d", len(routes), maxRoutes)
	}
	for i, r := range routes {
		field := fmt.Sprintf("routes[%d]", i)
		var dst netip.Prefix
		if r.GetDestination() != "" {
			var err error
			if dst, err = netip.ParsePrefix(r.GetDestination()); err != nil {
				return invalid(field+".destination", "%q is not CIDR notation", truncate(r.GetDestination(), 64))
			}
		}
		var gw netip.Addr
		if r.GetGateway() != "" {
			var err error
			if gw, err = netip.ParseAddr(r.GetGateway()); err != nil {
				return invalid(field+".gateway", "%q is not an IP address", truncate(r.GetGateway(), 64))
			}
			if dst.IsValid() && dst.Addr().Is4() != gw.Is4() {
				return invalid(field+".gateway", "%s is not of the destination's address family", gw)
			}
		}
		if r.GetInterfaceMac() != "" {
			mac, err := parseMAC(r.GetInterfaceMac())
			if err != nil {
				return invalid(field+".interface_mac", "%v", err)
			}
			if !macs[mac] {
				return invalid(field+".interface_mac", "%s is not one of the interfaces", mac)
			}
		}
		if !gw.IsValid() && r.GetInterfaceMac() == "" {
			return invalid(field, "neither gateway nor interface_mac")
		}
		if !dst.IsValid() && !gw.IsValid() {
			return invalid(field+".gateway", "a default route needs a gateway")
		}
	}
	return nil
}

func validateDNS(d *agentpb.DNS) error {
	if d == nil {
		return nil
	}
	if len(d.GetServers()) > maxNameservers {
		return invalid("dns.servers", "%d entries, more than %d", len(d.GetServers()), maxNameservers)
	}
	for i, s := range d.GetServers() {
		if _, err := netip.ParseAddr(s); err != nil {
			return invalid(fmt.Sprintf("dns.servers[%d]", i), "%q is not an IP address", truncate(s, 64))
		}
	}
	if len(d.GetSearches()) > maxSearches {
		return invalid("dns.searches", "%d entries, more than %d", len(d.GetSearches()), maxSearches)
	}
	total := 0
	for i, s := range d.GetSearches() {
		if !domainPattern.MatchString(s) || strings.Contains(s, "..") {
			return invalid(fmt.Sprintf("dns.searches[%d]", i), "%q is not a domain name", truncate(s, 64))
		}
		total += len(s) + 1
	}
	if total > maxSearchTotal {
		return invalid("dns.searches", "%d bytes in total, more than %d", total, maxSearchTotal)
	}
	if len(d.GetOptions()) > maxDNSOptions {
		return invalid("dns.options", "%d entries, more than %d", len(d.GetOptions()), maxDNSOptions)
	}
	for i, o := range d.GetOptions() {
		if !dnsOptPattern.MatchString(o) {
			return invalid(fmt.Sprintf("dns.options[%d]", i), "%q is not a resolver option", truncate(o, 64))
		}
	}
	return nil
}

func validateSysctls(sysctls []*agentpb.Sysctl) error {
	if len(sysctls) > maxSysctls {
		return invalid("sysctls", "%d entries, more than %d", len(sysctls), maxSysctls)
	}
	for i, s := range sysctls {
		field := fmt.Sprintf("sysctls[%d]", i)
		if err := validateSysctlKey(s.GetKey()); err != nil {
			return invalid(field+".key", "%v", err)
		}
		v := s.GetValue()
		if len(v) > maxSysctlValLen {
			return invalid(field+".value", "%d bytes, more than %d", len(v), maxSysctlValLen)
		}
		if strings.ContainsAny(v, "+=/\n\x00") {
			return invalid(field+".value", "contains one of + = / newline NUL")
		}
		// The host's allow- and deny-list, again: a host that skipped it
		// must not weaken the guest kernel (BPF JIT switches).
		if err := sysctl.Validate(map[string]string{s.GetKey(): s.GetValue()}); err != nil {
			return invalid(field, "%v", err)
		}
	}
	return nil
}

func validateSysctlKey(k string) error {
	if len(k) > maxSysctlKeyLen || !sysctlKeyFormat.MatchString(k) {
		return fmt.Errorf("%q is not a sysctl name", truncate(k, 64))
	}
	if k == "kernel.sem" {
		return nil
	}
	for _, p := range sysctlPrefixes {
		if strings.HasPrefix(k, p) {
			return nil
		}
	}
	return fmt.Errorf("%q is not namespaced (allowed: net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*)", k)
}
