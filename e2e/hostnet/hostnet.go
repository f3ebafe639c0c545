// Package hostnet undoes what the reference CNI plugins leave on a test
// host on purpose: the iptables chains portmap and firewall share between
// networks, and a network's bridge. Tests record what existed before them
// and remove only what they created.
package hostnet

import (
	"os/exec"
	"strings"

	"github.com/vishvananda/netlink"
)

// SharedChains are created once by portmap and firewall and kept by them.
var SharedChains = []struct{ Table, Chain string }{
	{"nat", "CNI-HOSTPORT-DNAT"},
	{"nat", "CNI-HOSTPORT-SETMARK"},
	{"nat", "CNI-HOSTPORT-MASQ"},
	{"filter", "CNI-FORWARD"},
	{"filter", "CNI-ADMIN"},
}

var iptablesCmds = []string{"iptables", "ip6tables"}

// Snapshot records which shared chains and links exist now.
type Snapshot struct {
	chains map[string]bool
	links  map[string]bool
}

// Take records the shared chains and the named links that exist.
func Take(links ...string) Snapshot {
	s := Snapshot{chains: map[string]bool{}, links: map[string]bool{}}
	for _, ipt := range iptablesCmds {
		for _, c := range SharedChains {
			if exec.Command(ipt, "-t", c.Table, "-S", c.Chain).Run() == nil {
				s.chains[ipt+" "+c.Table+" "+c.Chain] = true
			}
		}
	}
	for _, l := range links {
		if _, err := netlink.LinkByName(l); err == nil {
			s.links[l] = true
		}
	}
	return s
}

// Restore removes the named links and the shared chains that did not
// exist when s was taken.
func (s Snapshot) Restore(links ...string) {
	for _, name := range links {
		if s.links[name] {
			continue
		}
		if l, err := netlink.LinkByName(name); err == nil {
			_ = netlink.LinkDel(l)
		}
	}
	for _, ipt := range iptablesCmds {
		for _, c := range SharedChains {
			if !s.chains[ipt+" "+c.Table+" "+c.Chain] {
				RemoveChain(ipt, c.Table, c.Chain)
			}
		}
	}
}

// RemoveChain deletes every rule jumping to chain from the built-in chains
// of table, then the chain itself.
func RemoveChain(ipt, table, chain string) {
	if exec.Command(ipt, "-t", table, "-S", chain).Run() != nil {
		return
	}
	out, _ := exec.Command(ipt, "-t", table, "-S").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "-A ") && strings.Contains(line, "-j "+chain) {
			args := append([]string{"-t", table, "-D"}, SplitRule(strings.TrimPrefix(line, "-A "))...)
			_ = exec.Command(ipt, args...).Run()
		}
	}
	_ = exec.Command(ipt, "-t", table, "-F", chain).Run()
	_ = exec.Command(ipt, "-t", table, "-X", chain).Run()
}

// SplitRule splits an iptables -S line, keeping quoted comments whole.
func SplitRule(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			quoted = !quoted
		case c == ' ' && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// RulesMentioning returns the iptables and ip6tables rules (in -S form, all
// tables) that contain s, e.g. a pod's container ID in a CNI comment.
func RulesMentioning(s string) []string {
	var out []string
	for _, ipt := range iptablesCmds {
		for _, table := range []string{"filter", "nat", "mangle", "raw"} {
			b, _ := exec.Command(ipt, "-t", table, "-S").Output()
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, s) {
					out = append(out, ipt+" -t "+table+" "+line)
				}
			}
		}
	}
	return out
}
