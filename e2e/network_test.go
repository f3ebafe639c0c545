//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/e2e/hostnet"
	"github.com/podvisor/podvisor/e2e/hoststate"
)

// The network tests run the daemon on a bridge and subnets of their own
// rather than e2eBridge: host-local's store is per daemon, so two test
// binaries on one bridge (several people run e2e tests on one host) would
// hand out the same addresses, and a binary that finds e2eBridge missing
// at start deletes it at exit, under the other's pods. The network keeps
// the e2eNetwork name so the harness's IPAM check applies.
const (
	netBridge  = "pvnet0"
	netSubnet4 = "10.89.64.0/24"
	netGW4     = "10.89.64.1"
	netSubnet6 = "fd70:6476:6974:40::/64"
	netGW6     = "fd70:6476:6974:40::1"
	// netRulePrefix4 and netRulePrefix6 match any iptables rule about an
	// address of the subnets above.
	netRulePrefix4 = "10.89.64."
	netRulePrefix6 = "fd70:6476:6974:40:"
	// netHostPort is the host port of the hostPort test.
	netHostPort = 18480
)

// netConflist is the tests' network: the reference bridge, portmap and
// firewall plugins, then extra plugins; "%s" is host-local's data dir.
func netConflist(extraPlugins ...string) string {
	plugins := []string{
		`{"type": "bridge", "bridge": "` + netBridge + `", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": {"type": "host-local", "dataDir": "%s",
        "ranges": [[{"subnet": "` + netSubnet4 + `"}], [{"subnet": "` + netSubnet6 + `"}]],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}}`,
		`{"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}`,
		`{"type": "firewall"}`,
	}
	plugins = append(plugins, extraPlugins...)
	return `{"cniVersion": "1.0.0", "name": "` + e2eNetwork + `", "plugins": [` + strings.Join(plugins, ",\n") + "]}\n"
}

// removeNetBridgeAtEnd deletes netBridge at the end of the test unless it
// existed before. Registered before the daemon, it runs after the daemon's
// cleanup has removed the pods.
func removeNetBridgeAtEnd(t testing.TB) {
	t.Helper()
	if _, err := netlink.LinkByName(netBridge); err == nil {
		return
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(netBridge); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				t.Errorf("remove bridge %s: %v", netBridge, err)
			}
		}
	})
}

// startNetDaemon starts a daemon on the tests' network with extraPlugins
// appended to its conflist.
func startNetDaemon(t testing.TB, o daemonOptions, extraPlugins ...string) *daemon {
	t.Helper()
	removeNetBridgeAtEnd(t)
	o.Conflist = netConflist(extraPlugins...)
	return startDaemonWith(t, o)
}

// netPodConfig is a pod config with a log directory in the daemon's dir.
func netPodConfig(d *daemon, name string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: name, Namespace: "e2e-net", Uid: "uid-" + name},
		Hostname:     name,
		LogDirectory: filepath.Join(d.dir, "logs", name),
		Linux:        &runtime.LinuxPodSandboxConfig{},
	}
}

// runNetPod runs a pod through CRI and returns its ID.
func runNetPod(t testing.TB, d *daemon, cfg *runtime.PodSandboxConfig) string {
	t.Helper()
	resp, err := d.rt.RunPodSandbox(ctxFor(t, 5*time.Minute), &runtime.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox %s: %v", cfg.Metadata.Name, err)
	}
	return resp.PodSandboxId
}

func pullNetImage(t testing.TB, d *daemon, ref string) {
	t.Helper()
	if _, err := d.img.PullImage(ctxFor(t, 5*time.Minute), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
}

// startNetContainer creates and starts a container running args in pod.
func startNetContainer(t testing.TB, d *daemon, pod string, podCfg *runtime.PodSandboxConfig, name, image string, args []string) string {
	t.Helper()
	ctx := ctxFor(t, 3*time.Minute)
	cr, err := d.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{
		PodSandboxId:  pod,
		SandboxConfig: podCfg,
		Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: name},
			Image:    &runtime.ImageSpec{Image: image},
			Args:     args,
			LogPath:  name + ".log",
			Linux:    &runtime.LinuxContainerConfig{},
		},
	})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", name, err)
	}
	if _, err := d.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		t.Fatalf("StartContainer %s: %v", name, err)
	}
	return cr.ContainerId
}

// netExec runs cmd in a container through ExecSync and returns its
// stdout; a non-zero exit fails the test.
func netExec(t testing.TB, d *daemon, ctr string, timeout time.Duration, cmd ...string) string {
	t.Helper()
	out, err := tryNetExec(t, d, ctr, timeout, cmd...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func tryNetExec(t testing.TB, d *daemon, ctr string, timeout time.Duration, cmd ...string) (string, error) {
	t.Helper()
	resp, err := d.rt.ExecSync(ctxFor(t, timeout+time.Minute), &runtime.ExecSyncRequest{
		ContainerId: ctr, Cmd: cmd, Timeout: int64(timeout / time.Second),
	})
	if err != nil {
		return "", fmt.Errorf("exec %q: %w", cmd, err)
	}
	if resp.ExitCode != 0 {
		return string(resp.Stdout), fmt.Errorf("exec %q: exit code %d; stdout %q; stderr %q", cmd, resp.ExitCode, resp.Stdout, resp.Stderr)
	}
	return string(resp.Stdout), nil
}

// podNetStatus returns the pod's IP and additional IPs from
// PodSandboxStatus.
func podNetStatus(t testing.TB, d *daemon, id string) (netip.Addr, []netip.Addr) {
	t.Helper()
	resp, err := d.rt.PodSandboxStatus(ctxFor(t, time.Minute), &runtime.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		t.Fatalf("PodSandboxStatus %s: %v", id, err)
	}
	n := resp.GetStatus().GetNetwork()
	ip, err := netip.ParseAddr(n.GetIp())
	if err != nil {
		t.Fatalf("PodSandboxStatus %s: pod IP %q: %v", id, n.GetIp(), err)
	}
	var more []netip.Addr
	for _, a := range n.GetAdditionalIps() {
		ai, err := netip.ParseAddr(a.GetIp())
		if err != nil {
			t.Fatalf("PodSandboxStatus %s: additional IP %q: %v", id, a.GetIp(), err)
		}
		more = append(more, ai)
	}
	return ip, more
}

// httpGetBody fetches url from the host, retrying until it answers 200 or
// the timeout ends.
func httpGetBody(t testing.TB, url string, timeout time.Duration) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	var body string
	waitFor(t, timeout, "GET "+url, func() (bool, string) {
		resp, err := client.Get(url)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return false, err.Error()
		}
		body = string(b)
		return resp.StatusCode == http.StatusOK, resp.Status + " " + body
	})
	return body
}

// hostAddress4 is an IPv4 address of the host on a link other than
// loopback and the tests' bridge, for the hostPort test.
func hostAddress4(t testing.TB) (netip.Addr, bool) {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if l.Attrs().Name == netBridge || l.Attrs().Flags&net.FlagLoopback != 0 || l.Attrs().Flags&net.FlagUp == 0 {
			continue
		}
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap().IsGlobalUnicast() {
				return ip.Unmap(), true
			}
		}
	}
	return netip.Addr{}, false
}

// podTrace is what a pod's network put on the host, recorded while the pod
// runs so its absence can be checked after RemovePodSandbox.
type podTrace struct {
	id      string
	ips     []netip.Addr
	netns   string // the bind mount under the daemon's state dir
	nsIno   uint64 // the namespace's nsfs inode
	veth    string // the host end of the CNI veth
	vethIdx int
	cache   string // libcni's cached result
}

// tracePod records and checks the pod's network on the host: the netns
// mounted with the CNI veth and a tap redirected to each other by ingress
// filters, the host veth on the bridge, libcni's cache entry and the
// reservations in host-local's store.
func tracePod(t testing.TB, d *daemon, id string) podTrace {
	t.Helper()
	ip, more := podNetStatus(t, d, id)
	tr := podTrace{id: id, ips: append([]netip.Addr{ip}, more...),
		netns: filepath.Join(d.state, "network", "netns", id),
		cache: filepath.Join(d.root, "cni-cache", "results", e2eNetwork+"-"+id+"-eth0")}
	var st syscall.Stat_t
	if err := syscall.Stat(tr.netns, &st); err != nil {
		t.Fatalf("pod netns: %v", err)
	}
	tr.nsIno = st.Ino
	if len(netnsHolders(tr.nsIno)) == 0 {
		t.Errorf("pod %s: no process in its netns, not even the VMM", id)
	}
	checkPodNetNS(t, tr.netns)

	raw, err := os.ReadFile(tr.cache)
	if err != nil {
		t.Fatalf("libcni cache of pod %s: %v", id, err)
	}
	var cached struct {
		Result struct {
			Interfaces []struct {
				Name    string `json:"name"`
				Sandbox string `json:"sandbox"`
			} `json:"interfaces"`
		} `json:"result"`
	}
	if err := json.Unmarshal(raw, &cached); err != nil {
		t.Fatalf("libcni cache of pod %s: %v", id, err)
	}
	for _, itf := range cached.Result.Interfaces {
		if itf.Sandbox == "" && itf.Name != netBridge {
			tr.veth = itf.Name
		}
	}
	veth, err := netlink.LinkByName(tr.veth)
	if err != nil {
		t.Fatalf("host veth %q of pod %s: %v", tr.veth, id, err)
	}
	tr.vethIdx = veth.Attrs().Index
	if br, err := netlink.LinkByName(netBridge); err != nil || veth.Attrs().MasterIndex != br.Attrs().Index {
		t.Errorf("host veth %s is not on %s (%v)", tr.veth, netBridge, err)
	}
	for _, a := range tr.ips {
		if _, err := os.Stat(filepath.Join(d.ipamDir, e2eNetwork, a.String())); err != nil {
			t.Errorf("no host-local reservation for %s: %v", a, err)
		}
	}
	return tr
}

// checkPodNetNS checks that the pod namespace holds eth0 and tap0 with
// ingress redirects both ways. The namespace handle is closed before
// returning: an open one would keep the namespace alive after teardown.
func checkPodNetNS(t testing.TB, path string) {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatalf("open pod netns: %v", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	veth, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatalf("pod netns: %v", err)
	}
	tap, err := h.LinkByName("tap0")
	if err != nil || tap.Type() != "tuntap" {
		t.Fatalf("pod netns: tap0: %v (type %v)", err, tap)
	}
	for _, pair := range [][2]netlink.Link{{veth, tap}, {tap, veth}} {
		filters, err := h.FilterList(pair[0], netlink.HANDLE_MIN_INGRESS)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, f := range filters {
			if u, ok := f.(*netlink.U32); ok {
				for _, a := range u.Actions {
					if m, ok := a.(*netlink.MirredAction); ok && m.Ifindex == pair[1].Attrs().Index {
						found = true
					}
				}
			}
		}
		if !found {
			t.Errorf("pod netns: no ingress redirect %s -> %s", pair[0].Attrs().Name, pair[1].Attrs().Name)
		}
	}
}

// assertNetworkGone checks, right after RemovePodSandbox, that nothing of
// the pod's network is left on the host.
func assertNetworkGone(t testing.TB, d *daemon, tr podTrace) {
	t.Helper()
	if _, err := os.Lstat(tr.netns); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod %s: netns file still there: %v", tr.id, err)
	}
	if m := hoststate.MountsUnder(tr.netns); len(m) > 0 {
		t.Errorf("pod %s: netns still mounted: %v", tr.id, m)
	}
	// Nothing holds the namespace, so the kernel has freed it with the
	// pod's end of the veth, the tap and their qdiscs and filters.
	if holders := netnsHolders(tr.nsIno); len(holders) > 0 {
		t.Errorf("pod %s: netns still held by %v", tr.id, holders)
	}
	if _, err := os.Lstat(filepath.Join(d.state, "network", "pods", tr.id+".json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod %s: network record still there: %v", tr.id, err)
	}
	if _, err := os.Lstat(tr.cache); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pod %s: libcni cache entry still there: %v", tr.id, err)
	}
	if l, err := netlink.LinkByName(tr.veth); err == nil {
		t.Errorf("pod %s: host veth %s still there (index %d)", tr.id, tr.veth, l.Attrs().Index)
	}
	if l, err := netlink.LinkByIndex(tr.vethIdx); err == nil && l.Type() == "veth" {
		t.Errorf("pod %s: a veth %s holds the host veth's index %d", tr.id, l.Attrs().Name, tr.vethIdx)
	}
	if q := hostQdiscsOn(tr.vethIdx); len(q) > 0 {
		t.Errorf("pod %s: qdiscs left on host link %d: %v", tr.id, tr.vethIdx, q)
	}
	if rules := netRulesMentioning(tr.id, tr.ips); len(rules) > 0 {
		t.Errorf("pod %s: iptables rules left:\n%s", tr.id, strings.Join(rules, "\n"))
	}
	assertNoReservation(t, d, tr.id, tr.ips)
}

// assertNoReservation checks host-local's store for the pod's addresses
// and ID.
func assertNoReservation(t testing.TB, d *daemon, id string, ips []netip.Addr) {
	t.Helper()
	store := filepath.Join(d.ipamDir, e2eNetwork)
	for _, a := range ips {
		if _, err := os.Lstat(filepath.Join(store, a.String())); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pod %s: host-local still reserves %s: %v", id, a, err)
		}
	}
	entries, _ := os.ReadDir(store)
	for _, e := range entries {
		if b, _ := os.ReadFile(filepath.Join(store, e.Name())); strings.Contains(string(b), id) {
			t.Errorf("pod %s: host-local entry %s names it", id, e.Name())
		}
	}
}

// netRulesMentioning returns iptables and ip6tables rules that name the
// pod's ID or one of its addresses (as a whole address, not a prefix of
// another).
func netRulesMentioning(id string, ips []netip.Addr) []string {
	rules := hostnet.RulesMentioning(id)
	for _, a := range ips {
		s := a.String()
		re := regexp.MustCompile(`(^|[^0-9a-fA-F:.])` + regexp.QuoteMeta(s) + `([^0-9a-fA-F]|$)`)
		if a.Is4() {
			re = regexp.MustCompile(`(^|[^0-9.])` + regexp.QuoteMeta(s) + `([^0-9]|$)`)
		}
		for _, r := range hostnet.RulesMentioning(s) {
			if re.MatchString(r) {
				rules = append(rules, r)
			}
		}
	}
	return rules
}

// netnsHolders lists the processes that are in, or hold a descriptor of,
// the network namespace with inode ino.
func netnsHolders(ino uint64) []string {
	want := fmt.Sprintf("net:[%d]", ino)
	var out []string
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if p.Name()[0] < '0' || p.Name()[0] > '9' {
			continue
		}
		if l, _ := os.Readlink(filepath.Join("/proc", p.Name(), "ns", "net")); l == want {
			out = append(out, p.Name()+" (in it)")
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			if l, _ := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name())); l == want {
				out = append(out, p.Name()+" (fd "+fd.Name()+")")
				break
			}
		}
	}
	return out
}

// hostQdiscsOn lists the host namespace's qdiscs on link index idx and the
// tc filters of any host link that redirect to it.
func hostQdiscsOn(idx int) []string {
	var out []string
	qs, _ := netlink.QdiscList(nil)
	for _, q := range qs {
		if q.Attrs().LinkIndex == idx {
			out = append(out, q.Type())
		}
	}
	links, _ := netlink.LinkList()
	for _, l := range links {
		for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
			fs, _ := netlink.FilterList(l, parent)
			for _, f := range fs {
				if u, ok := f.(*netlink.U32); ok {
					for _, a := range u.Actions {
						if m, ok := a.(*netlink.MirredAction); ok && m.Ifindex == idx {
							out = append(out, "redirect from "+l.Attrs().Name)
						}
					}
				}
			}
		}
	}
	return out
}

// stopAndRemovePod stops and removes a pod through CRI.
func stopAndRemovePod(t testing.TB, d *daemon, id string) {
	t.Helper()
	ctx := ctxFor(t, 3*time.Minute)
	if _, err := d.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("StopPodSandbox %s: %v", id, err)
	}
	if _, err := d.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("RemovePodSandbox %s: %v", id, err)
	}
}

// TestNetworkPods covers a pod's network end to end with two pod VMs on a
// bridge: addresses in PodSandboxStatus, TCP pod to pod and host to pod
// over IPv4 and IPv6, a hostPort, the DNS, hostname and hosts files and a
// sysctl inside a container, and nothing left on the host once the pods
// are removed.
func TestNetworkPods(t *testing.T) {
	d := startNetDaemon(t, daemonOptions{})
	pullNetImage(t, d, imageBusybox)

	cfgA := netPodConfig(d, "net-a")
	cfgA.PortMappings = []*runtime.PortMapping{{Protocol: runtime.Protocol_TCP, ContainerPort: 8080, HostPort: netHostPort}}
	cfgA.DnsConfig = &runtime.DNSConfig{
		Servers:  []string{"10.89.64.53", "fd70:6476:6974:40::53"},
		Searches: []string{"svc.e2e.test", "e2e.test"},
		Options:  []string{"ndots:3", "timeout:2"},
	}
	cfgA.Linux.Sysctls = map[string]string{"net.ipv4.tcp_keepalive_time": "321"}
	podA := runNetPod(t, d, cfgA)
	cfgB := netPodConfig(d, "net-b")
	podB := runNetPod(t, d, cfgB)

	ipA, moreA := podNetStatus(t, d, podA)
	ipB, moreB := podNetStatus(t, d, podB)
	t.Logf("pod A %s %v, pod B %s %v", ipA, moreA, ipB, moreB)
	sub4, sub6 := netip.MustParsePrefix(netSubnet4), netip.MustParsePrefix(netSubnet6)
	for _, p := range []struct {
		name string
		ip   netip.Addr
		more []netip.Addr
	}{{"A", ipA, moreA}, {"B", ipB, moreB}} {
		if !p.ip.Is4() || !sub4.Contains(p.ip) {
			t.Errorf("pod %s: IP %s, want an IPv4 address in %s", p.name, p.ip, netSubnet4)
		}
		if len(p.more) != 1 || !sub6.Contains(p.more[0]) {
			t.Fatalf("pod %s: additional IPs %v, want one in %s", p.name, p.more, netSubnet6)
		}
	}
	if ipA == ipB || moreA[0] == moreB[0] {
		t.Fatalf("pods share addresses: %s %v and %s %v", ipA, moreA, ipB, moreB)
	}
	ip6A := moreA[0]

	web := startNetContainer(t, d, podA, cfgA, "web", imageBusybox, []string{"sh", "-c",
		"mkdir -p /www && echo served-by-net-a > /www/index.html && exec httpd -f -v -p 8080 -h /www"})
	client := startNetContainer(t, d, podB, cfgB, "client", imageBusybox, []string{"sleep", "3600"})

	t.Run("host to pod", func(t *testing.T) {
		for _, url := range []string{
			fmt.Sprintf("http://%s:8080/index.html", ipA),
			fmt.Sprintf("http://[%s]:8080/index.html", ip6A),
		} {
			if body := httpGetBody(t, url, 2*time.Minute); strings.TrimSpace(body) != "served-by-net-a" {
				t.Errorf("GET %s: body %q", url, body)
			}
		}
	})

	t.Run("pod to pod", func(t *testing.T) {
		for _, url := range []string{
			fmt.Sprintf("http://%s:8080/index.html", ipA),
			fmt.Sprintf("http://[%s]:8080/index.html", ip6A),
		} {
			var out string
			// No wget -T: Debian's busybox 1.35 wget crashes with it.
			waitFor(t, 2*time.Minute, "wget "+url+" in pod B", func() (bool, string) {
				var err error
				out, err = tryNetExec(t, d, client, 30*time.Second, "wget", "-q", "-O", "-", url)
				if err != nil {
					return false, err.Error()
				}
				return true, ""
			})
			if strings.TrimSpace(out) != "served-by-net-a" {
				t.Errorf("pod B got %q from %s", out, url)
			}
		}
		// httpd -v logs each client: pod B's own addresses, not a NAT.
		logFile := filepath.Join(cfgA.LogDirectory, "web.log")
		waitFor(t, time.Minute, "pod B's addresses in pod A's httpd log", func() (bool, string) {
			b, _ := os.ReadFile(logFile)
			s := string(b)
			return strings.Contains(s, ipB.String()+"]:") && strings.Contains(s, "["+moreB[0].String()+"]:"), s
		})
	})

	t.Run("hostPort", func(t *testing.T) {
		// portmap DNATs locally sent traffic to any host address, and
		// 127.0.0.1 through route_localnet, which IPv6 lacks: [::1] is
		// not expected to work.
		targets := []string{netGW4, "127.0.0.1", "[" + netGW6 + "]"}
		if a, ok := hostAddress4(t); ok {
			targets = append(targets, a.String())
		}
		for _, h := range targets {
			url := fmt.Sprintf("http://%s:%d/index.html", h, netHostPort)
			if body := httpGetBody(t, url, 20*time.Second); strings.TrimSpace(body) != "served-by-net-a" {
				t.Errorf("GET %s: body %q", url, body)
			}
		}
		if rules := hostnet.RulesMentioning(podA); len(rules) == 0 {
			t.Errorf("no iptables rule names pod A although it has a hostPort")
		}
	})

	t.Run("files and sysctls in a container", func(t *testing.T) {
		wantResolv := "nameserver 10.89.64.53\nnameserver fd70:6476:6974:40::53\nsearch svc.e2e.test e2e.test\noptions ndots:3 timeout:2\n"
		if got := netExec(t, d, web, 30*time.Second, "cat", "/etc/resolv.conf"); got != wantResolv {
			t.Errorf("resolv.conf:\n%s\nwant:\n%s", got, wantResolv)
		}
		if got := netExec(t, d, web, 30*time.Second, "hostname"); strings.TrimSpace(got) != "net-a" {
			t.Errorf("hostname %q, want net-a", got)
		}
		if got := netExec(t, d, web, 30*time.Second, "cat", "/etc/hostname"); got != "net-a\n" {
			t.Errorf("/etc/hostname %q, want \"net-a\\n\"", got)
		}
		hosts := netExec(t, d, web, 30*time.Second, "cat", "/etc/hosts")
		for _, want := range [][]string{{"127.0.0.1", "localhost"}, {"::1", "localhost"}, {ipA.String(), "net-a"}, {ip6A.String(), "net-a"}} {
			if !hostsHas(hosts, want[0], want[1]) {
				t.Errorf("/etc/hosts lacks %s %s:\n%s", want[0], want[1], hosts)
			}
		}
		if got := netExec(t, d, web, 30*time.Second, "cat", "/proc/sys/net/ipv4/tcp_keepalive_time"); strings.TrimSpace(got) != "321" {
			t.Errorf("sysctl net.ipv4.tcp_keepalive_time = %q, want 321", got)
		}
		routes := netExec(t, d, web, 30*time.Second, "ip", "route")
		if !strings.Contains(routes, "default via "+netGW4) {
			t.Errorf("no default route via %s in the guest:\n%s", netGW4, routes)
		}
	})

	trA, trB := tracePod(t, d, podA), tracePod(t, d, podB)
	if rules := netRulesMentioning(podA, trA.ips); len(rules) == 0 {
		t.Errorf("no iptables rule names pod A or its addresses before removal")
	}
	stopAndRemovePod(t, d, podA)
	assertNetworkGone(t, d, trA)
	hostPortURL := fmt.Sprintf("http://%s:%d/", netGW4, netHostPort)
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(hostPortURL); err == nil {
		resp.Body.Close()
		t.Errorf("GET %s answered %s after pod A was removed", hostPortURL, resp.Status)
	}
	stopAndRemovePod(t, d, podB)
	assertNetworkGone(t, d, trB)
	if entries, _ := os.ReadDir(filepath.Join(d.state, "network", "netns")); len(entries) > 0 {
		t.Errorf("netns dir not empty after removing every pod: %v", entries)
	}
}

// hostsHas reports whether hosts(5) content maps addr to name.
func hostsHas(hosts, addr, name string) bool {
	for _, line := range strings.Split(hosts, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != addr {
			continue
		}
		for _, n := range f[1:] {
			if n == name {
				return true
			}
		}
	}
	return false
}

// failingCNIPlugin fails ADD with a CNI error and accepts everything else.
const failingCNIPlugin = `#!/bin/sh
case "$CNI_COMMAND" in
ADD) cat >/dev/null; echo '{"cniVersion":"1.0.0","code":999,"msg":"injected failure from e2e-fail","details":"network e2e"}'; exit 1 ;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}' ;;
esac
exit 0
`

// sandboxIDPattern finds a sandbox ID in an error message.
var sandboxIDPattern = regexp.MustCompile(`[0-9a-f]{64}`)

// TestNetworkFailingPluginLeavesNothing puts a plugin that fails ADD after
// bridge, portmap and firewall: RunPodSandbox must fail with its message,
// no VM may boot, and the rollback must leave no netns, reservation, veth
// or iptables rule. A retry with the same metadata fails the same way.
func TestNetworkFailingPluginLeavesNothing(t *testing.T) {
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "e2e-fail"), []byte(failingCNIPlugin), 0o755); err != nil {
		t.Fatal(err)
	}
	d := startNetDaemon(t, daemonOptions{CNIBinDirs: []string{bin}}, `{"type": "e2e-fail"}`)
	cfg := netPodConfig(d, "net-fail")
	cfg.PortMappings = []*runtime.PortMapping{{Protocol: runtime.Protocol_TCP, ContainerPort: 8080, HostPort: netHostPort + 1}}

	for attempt := 0; attempt < 2; attempt++ {
		_, err := d.rt.RunPodSandbox(ctxFor(t, 5*time.Minute), &runtime.RunPodSandboxRequest{Config: cfg})
		st := status.Convert(err)
		if err == nil || !strings.Contains(st.Message(), "injected failure from e2e-fail") {
			t.Fatalf("attempt %d: RunPodSandbox error %v, want the plugin's message", attempt, err)
		}
		if st.Code() != codes.Unavailable {
			t.Errorf("attempt %d: code %s, want Unavailable (a CNI plugin failed): %s", attempt, st.Code(), st.Message())
		}
		id := sandboxIDPattern.FindString(st.Message())
		if id == "" {
			t.Errorf("attempt %d: the error names no sandbox ID: %s", attempt, st.Message())
		}
		t.Logf("attempt %d: %s: %s", attempt, st.Code(), st.Message())
		assertNothingAfterFailedRun(t, d, id)
	}
	if strings.Contains(d.log(), "Pod VM ready") {
		t.Errorf("a pod VM booted although its network failed")
	}
	if strings.Contains(d.log(), "rollback step failed") {
		t.Errorf("the network rollback reported a failure")
	}
}

// assertNothingAfterFailedRun checks that a failed RunPodSandbox left no
// pod, netns, record, cache entry, reservation, veth or rule.
func assertNothingAfterFailedRun(t testing.TB, d *daemon, id string) {
	t.Helper()
	pods, err := d.rt.ListPodSandbox(ctxFor(t, time.Minute), &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) > 0 {
		t.Errorf("pods listed after a failed RunPodSandbox: %v", pods.Items)
	}
	for _, sub := range []string{"netns", "pods"} {
		if entries, _ := os.ReadDir(filepath.Join(d.state, "network", sub)); len(entries) > 0 {
			t.Errorf("left in network/%s: %v", sub, entries)
		}
	}
	if cached, _ := filepath.Glob(filepath.Join(d.root, "cni-cache", "results", "*")); len(cached) > 0 {
		t.Errorf("libcni cache entries left: %v", cached)
	}
	entries, _ := os.ReadDir(filepath.Join(d.ipamDir, e2eNetwork))
	for _, e := range entries {
		if n := e.Name(); n != "lock" && !strings.HasPrefix(n, "last_reserved_ip") {
			t.Errorf("host-local reservation left: %s", n)
		}
	}
	if br, err := netlink.LinkByName(netBridge); err == nil {
		links, _ := netlink.LinkList()
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				t.Errorf("veth %s left on %s", l.Attrs().Name, netBridge)
			}
		}
	}
	var rules []string
	for _, s := range []string{netRulePrefix4, netRulePrefix6} {
		rules = append(rules, hostnet.RulesMentioning(s)...)
	}
	if id != "" {
		rules = append(rules, hostnet.RulesMentioning(id)...)
	}
	if len(rules) > 0 {
		t.Errorf("iptables rules left:\n%s", strings.Join(rules, "\n"))
	}
	for _, pid := range hoststate.ProcessesMentioning(d.dir + "/") {
		if d.cmd == nil || pid != d.cmd.Process.Pid {
			t.Errorf("process %d of the daemon's pods running", pid)
		}
	}
}

// TestNetworkBadSysctlRejectedBeforeBoot checks that an invalid pod sysctl
// is InvalidArgument naming the field and key, before any network is set
// up or VM booted.
func TestNetworkBadSysctlRejectedBeforeBoot(t *testing.T) {
	d := startNetDaemon(t, daemonOptions{})
	for i, tc := range []struct {
		name, key, value string
	}{
		{"value with newline", "net.ipv4.ip_forward", "1\n"},
		{"not namespaced", "kernel.panic", "1"},
		{"denied net sysctl", "net.core.bpf_jit_harden", "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := netPodConfig(d, fmt.Sprintf("net-sysctl-%d", i))
			cfg.Linux.Sysctls = map[string]string{tc.key: tc.value}
			logBefore := len(d.log())
			start := time.Now()
			_, err := d.rt.RunPodSandbox(ctxFor(t, 5*time.Minute), &runtime.RunPodSandboxRequest{Config: cfg})
			took := time.Since(start)
			st := status.Convert(err)
			if err == nil {
				t.Fatalf("RunPodSandbox with sysctl %s=%q succeeded", tc.key, tc.value)
			}
			t.Logf("%s after %s: %s", st.Code(), took.Round(time.Millisecond), st.Message())
			if st.Code() != codes.InvalidArgument {
				t.Errorf("code %s, want InvalidArgument", st.Code())
			}
			if msg := st.Message(); !strings.Contains(msg, "sysctls") || !strings.Contains(msg, tc.key) {
				t.Errorf("message does not name the sysctls field and key %s: %s", tc.key, msg)
			}
			if log := d.log(); len(log) > logBefore {
				for _, mark := range []string{"Set up pod network", "Pod VM ready"} {
					if strings.Contains(log[logBefore:], mark) {
						t.Errorf("%q logged before the sysctl was refused: the check runs too late", mark)
					}
				}
			}
			assertNothingAfterFailedRun(t, d, sandboxIDPattern.FindString(st.Message()))
		})
	}
}
