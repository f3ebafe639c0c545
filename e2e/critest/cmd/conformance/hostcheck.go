package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"

	"github.com/podvisor/podvisor/e2e/hoststate"
	"github.com/podvisor/podvisor/network"
)

// Host state shared with anything else on the machine: the default
// network's bridge, host-local's reservation store and the CNI iptables
// chains. The harness snapshots it before the daemon starts, so that after
// the run it can tell what the run created. Other runtimes may use the same
// bridge and stores meanwhile, so leftovers there are attributed by pod
// sandbox ID (host-local and the bridge plugin record it), not by
// before-and-after difference.
type hostState struct {
	bridge        string
	bridgeExisted bool
	ipamDir       string
	// ipamCreated is the top-most directory of ipamDir that did not exist.
	ipamCreated string
}

// defaultNetwork returns the bridge and network name of DefaultConflist.
func defaultNetwork() (bridge, name string) {
	var conf struct {
		Name    string `json:"name"`
		Plugins []struct {
			Type   string `json:"type"`
			Bridge string `json:"bridge"`
		} `json:"plugins"`
	}
	_ = json.Unmarshal([]byte(network.DefaultConflist), &conf)
	for _, p := range conf.Plugins {
		if p.Type == "bridge" {
			bridge = p.Bridge
		}
	}
	return bridge, conf.Name
}

func snapshotHost() hostState {
	bridge, name := defaultNetwork()
	s := hostState{bridge: bridge, ipamDir: filepath.Join("/var/lib/cni/networks", name)}
	if _, err := netlink.LinkByName(bridge); err == nil {
		s.bridgeExisted = true
	}
	for d := s.ipamDir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		s.ipamCreated = d
	}
	return s
}

// checkHost lists what the run left: processes, mounts, network
// namespaces and VM directories below the daemon's directory, and IP
// reservations and iptables chains of the daemon's pods. It kills, unmounts
// and removes those, which are certainly the run's. The bridge and
// host-local's directory are removed when the run created them and nothing
// uses them any more.
func (d *daemon) checkHost(before hostState) []string {
	var out []string
	for _, pid := range hoststate.ProcessesMentioning(d.dir) {
		cmdline, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		out = append(out, fmt.Sprintf("process %d: %s (killed)", pid, strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")))
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, sub := range []string{d.state + "-vms", filepath.Join(d.state, "pods"), filepath.Join(d.state, "network", "netns")} {
		entries, _ := os.ReadDir(sub)
		for _, e := range entries {
			out = append(out, fmt.Sprintf("left in %s: %s", sub, e.Name()))
		}
	}
	for _, m := range hoststate.MountsUnder(d.dir) {
		out = append(out, "mount "+m)
	}
	ours := d.sandboxIDs()
	for _, f := range ourReservations(before.ipamDir, ours) {
		out = append(out, fmt.Sprintf("IP reservation %s of pod %s (removed)", filepath.Base(f.path), short(f.id)))
		_ = os.Remove(f.path)
	}
	out = append(out, removeOurChains(ours)...)

	if l, err := netlink.LinkByName(before.bridge); err == nil && !before.bridgeExisted && !bridgeInUse(l) {
		if err := netlink.LinkDel(l); err != nil {
			out = append(out, fmt.Sprintf("delete bridge %s, which the run created: %v", before.bridge, err))
		}
	}
	if before.ipamCreated != "" && len(reservationFiles(before.ipamDir)) == 0 {
		_ = os.RemoveAll(before.ipamCreated)
	}
	return out
}

// sandboxIDs are the pod sandbox IDs the daemon logged.
func (d *daemon) sandboxIDs() map[string]bool {
	b, _ := os.ReadFile(d.logPath)
	ids := map[string]bool{}
	for _, m := range sandboxIDRE.FindAllStringSubmatch(string(b), -1) {
		ids[m[1]] = true
	}
	return ids
}

var sandboxIDRE = regexp.MustCompile(`podSandboxID="([0-9a-f]{64})"`)

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func bridgeInUse(br netlink.Link) bool {
	links, _ := netlink.LinkList()
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			return true
		}
	}
	return false
}

// reservationFiles lists host-local's per-address files (not its lock and
// last-reserved bookkeeping).
func reservationFiles(dir string) []string {
	var out []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if n := e.Name(); n != "lock" && !strings.HasPrefix(n, "last_reserved_ip") {
			out = append(out, filepath.Join(dir, n))
		}
	}
	return out
}

type reservation struct{ path, id string }

// ourReservations are the reservations whose first line, the container ID
// host-local records, is one of ids.
func ourReservations(dir string, ids map[string]bool) []reservation {
	var out []reservation
	for _, p := range reservationFiles(dir) {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		id := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
		if ids[id] {
			out = append(out, reservation{p, id})
		}
	}
	return out
}

// removeOurChains finds the per-pod iptables chains (the bridge plugin's
// masquerade chains, portmap's DNAT chains) whose rules carry one of ids in
// their comment, and removes them with the rules jumping to them.
func removeOurChains(ids map[string]bool) []string {
	var out []string
	for _, tool := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"nat", "filter"} {
			b, err := exec.Command(tool+"-save", "-t", table).Output()
			if err != nil {
				continue
			}
			lines := strings.Split(string(b), "\n")
			chains := map[string]string{} // chain -> pod ID
			for _, line := range lines {
				m := commentIDRE.FindStringSubmatch(line)
				if m == nil || !ids[m[1]] {
					continue
				}
				f := strings.Fields(line)
				if len(f) > 1 && f[0] == "-A" && isPodChain(f[1]) {
					chains[f[1]] = m[1]
				}
				if j := jumpTarget(f); isPodChain(j) {
					chains[j] = m[1]
				}
			}
			if len(chains) == 0 {
				continue
			}
			var script strings.Builder
			script.WriteString("*" + table + "\n")
			for _, line := range lines {
				if f := strings.Fields(line); len(f) > 1 && f[0] == "-A" && chains[jumpTarget(f)] != "" && chains[f[1]] == "" {
					script.WriteString("-D" + strings.TrimPrefix(line, "-A") + "\n")
				}
			}
			var names []string
			for c := range chains {
				names = append(names, c)
			}
			sort.Strings(names)
			for _, c := range names {
				script.WriteString("-F " + c + "\n")
			}
			for _, c := range names {
				script.WriteString("-X " + c + "\n")
				out = append(out, fmt.Sprintf("%s %s chain %s of pod %s (removed)", tool, table, c, short(chains[c])))
			}
			script.WriteString("COMMIT\n")
			cmd := exec.Command(tool+"-restore", "--noflush")
			cmd.Stdin = strings.NewReader(script.String())
			if b, err := cmd.CombinedOutput(); err != nil {
				out = append(out, fmt.Sprintf("%s-restore: %v: %s", tool, err, b))
			}
		}
	}
	return out
}

var commentIDRE = regexp.MustCompile(`id: \\"([0-9a-f]{64})\\"`)

func jumpTarget(fields []string) string {
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == "-j" || fields[i] == "-g" {
			return fields[i+1]
		}
	}
	return ""
}

// isPodChain tells a per-pod chain from the ones the portmap and firewall
// plugins share among all pods (and leave after the last one).
func isPodChain(c string) bool {
	return strings.HasPrefix(c, "CNI-") && !strings.HasPrefix(c, "CNI-HOSTPORT-") && c != "CNI-FORWARD" && c != "CNI-ADMIN"
}
