//go:build e2e

package network

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ruleNeedles are how iptables-save prints a pod's addresses.
func ruleNeedles(pn *PodNetwork) []string {
	var out []string
	for _, ip := range pn.IPs {
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()).String())
	}
	return out
}

func TestSetupWiresTapAndTeardownCleansUp(t *testing.T) {
	env := newTestEnv(t)
	m := env.manager(t)
	req := podRequest("e2e-pod1")
	req.PortMappings = []PortMapping{{Protocol: "TCP", ContainerPort: 80, HostPort: 18080}}
	pn, err := m.Setup(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	defer pn.CloseTaps()

	if pn.NetNSPath != m.NetNSPath(req.ID) || !isNetNS(pn.NetNSPath) {
		t.Fatalf("netns %s is not a mounted namespace", pn.NetNSPath)
	}
	if len(pn.NICs) != 1 || len(pn.Guest.Interfaces) != 1 {
		t.Fatalf("NICs = %+v, interfaces = %+v", pn.NICs, pn.Guest.Interfaces)
	}
	nic, itf := pn.NICs[0], pn.Guest.Interfaces[0]
	if nic.MAC.String() != itf.MAC.String() || nic.MTU != itf.MTU || itf.Name != "eth0" {
		t.Errorf("NIC %s/%d does not match guest interface %+v", nic.MAC, nic.MTU, itf)
	}
	if !pn.PrimaryIP().Is4() || !netip.MustParsePrefix(testSubnet4).Contains(pn.PrimaryIP()) {
		t.Errorf("primary IP %s not in %s", pn.PrimaryIP(), testSubnet4)
	}
	if add := pn.AdditionalIPs(); len(add) != 1 || !netip.MustParsePrefix(testSubnet6).Contains(add[0]) {
		t.Errorf("additional IPs %v, want one in %s", add, testSubnet6)
	}
	if len(pn.Guest.Routes) != 2 || pn.Guest.Routes[0].Gateway.String() != testGW4 {
		t.Errorf("routes %+v", pn.Guest.Routes)
	}
	if pn.Guest.Hostname != req.ID {
		t.Errorf("hostname %q", pn.Guest.Hostname)
	}

	veth, tap := inspectPodLinks(t, pn.NetNSPath)
	if veth.Attrs().HardwareAddr.String() != nic.MAC.String() || tap.Attrs().MTU != veth.Attrs().MTU {
		t.Errorf("veth %s mtu %d, tap mtu %d, NIC MAC %s", veth.Attrs().HardwareAddr, veth.Attrs().MTU, tap.Attrs().MTU, nic.MAC)
	}
	if tap.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("tap is down")
	}
	if !strings.Contains(iptablesSave(t), req.ID) {
		t.Errorf("no iptables rule for the pod's host port")
	}

	// A frame written to the tap (as the guest would send it) reaches the
	// bridge through the veth; the gateway's ARP reply comes back the same
	// way and is read from the tap.
	gw := netip.MustParseAddr(testGW4)
	if err := arpRoundTrip(nic.Tap, nic.MAC, pn.PrimaryIP(), gw); err != nil {
		t.Fatal(err)
	}
	_, tap = inspectPodLinks(t, pn.NetNSPath)
	if s := tap.Attrs().Statistics; s == nil || s.RxPackets == 0 || s.TxPackets == 0 {
		t.Errorf("tap counters did not move: %+v", s)
	}

	needles := ruleNeedles(pn)
	if err := pn.CloseTaps(); err != nil {
		t.Fatal(err)
	}
	if err := m.Teardown(context.Background(), req.ID); err != nil {
		t.Fatal(err)
	}
	env.assertNoTrace(t, m, req.ID, needles...)
	// DEL after DEL.
	if err := m.Teardown(context.Background(), req.ID); err != nil {
		t.Fatalf("second Teardown: %v", err)
	}
}

// inspectPodLinks returns eth0 and tap0 of the pod namespace after checking
// the ingress redirects between them.
func inspectPodLinks(t *testing.T, nsPath string) (veth, tap netlink.Link) {
	t.Helper()
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if veth, err = h.LinkByName("eth0"); err != nil {
		t.Fatal(err)
	}
	if tap, err = h.LinkByName("tap0"); err != nil {
		t.Fatal(err)
	}
	if tap.Type() != "tuntap" {
		t.Errorf("tap0 is a %s", tap.Type())
	}
	for _, pair := range [][2]netlink.Link{{veth, tap}, {tap, veth}} {
		filters, err := h.FilterList(pair[0], netlink.HANDLE_MIN_INGRESS)
		if err != nil {
			t.Fatal(err)
		}
		if !redirectsTo(filters, pair[1].Attrs().Index) {
			t.Errorf("no ingress redirect %s -> %s in %+v", pair[0].Attrs().Name, pair[1].Attrs().Name, filters)
		}
	}
	return veth, tap
}

func redirectsTo(filters []netlink.Filter, ifindex int) bool {
	for _, f := range filters {
		u, ok := f.(*netlink.U32)
		if !ok {
			continue
		}
		for _, a := range u.Actions {
			if m, ok := a.(*netlink.MirredAction); ok && m.MirredAction == netlink.TCA_EGRESS_REDIR && m.Ifindex == ifindex {
				return true
			}
		}
	}
	return false
}

// vnetHdrLen is the virtio-net header the tap expects with IFF_VNET_HDR
// until a VMM sets another size.
const vnetHdrLen = 10

func arpRoundTrip(tap *os.File, mac net.HardwareAddr, ip, gw netip.Addr) error {
	frame := make([]byte, vnetHdrLen, vnetHdrLen+42)
	frame = append(frame, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	frame = append(frame, mac...)
	frame = binary.BigEndian.AppendUint16(frame, unix.ETH_P_ARP)
	frame = append(frame, 0, 1, 8, 0, 6, 4, 0, 1) // Ethernet/IPv4, request
	frame = append(frame, mac...)
	frame = append(frame, ip.AsSlice()...)
	frame = append(frame, 0, 0, 0, 0, 0, 0)
	frame = append(frame, gw.AsSlice()...)
	if _, err := tap.Write(frame); err != nil {
		return err
	}
	if err := tap.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	buf := make([]byte, 65536)
	for {
		n, err := tap.Read(buf)
		if err != nil {
			return errors.Join(errors.New("no ARP reply from the gateway through the tap"), err)
		}
		f := buf[vnetHdrLen:n]
		if len(f) >= 42 && binary.BigEndian.Uint16(f[12:]) == unix.ETH_P_ARP &&
			binary.BigEndian.Uint16(f[20:]) == 2 && netip.AddrFrom4([4]byte(f[28:32])) == gw &&
			net.HardwareAddr(f[0:6]).String() == mac.String() {
			return nil
		}
	}
}

func iptablesSave(t *testing.T) string {
	t.Helper()
	var all []byte
	for _, ipt := range iptablesCmds {
		out, err := exec.Command(ipt + "-save").Output()
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, out...)
	}
	return string(all)
}

func TestTwoPodsGetDifferentIPs(t *testing.T) {
	env := newTestEnv(t)
	m := env.manager(t)
	a := env.setup(t, m, podRequest("e2e-a"))
	b := env.setup(t, m, podRequest("e2e-b"))
	if a.PrimaryIP() == b.PrimaryIP() || a.AdditionalIPs()[0] == b.AdditionalIPs()[0] {
		t.Errorf("pods share addresses: %v and %v", a.IPs, b.IPs)
	}
	if a.NICs[0].MAC.String() == b.NICs[0].MAC.String() {
		t.Errorf("pods share MAC %s", a.NICs[0].MAC)
	}
}

func TestSetupTwiceIsAlreadyExists(t *testing.T) {
	env := newTestEnv(t)
	m := env.manager(t)
	env.setup(t, m, podRequest("e2e-dup"))
	if _, err := m.Setup(context.Background(), podRequest("e2e-dup")); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("second Setup: %v, want ErrAlreadyExists", err)
	}
}

// failingPlugin succeeds on everything but ADD, where it prints a CNI error.
const failingPlugin = `#!/bin/sh
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"1.0.0","code":999,"msg":"injected failure","details":"e2e"}'; exit 1 ;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}' ;;
esac
exit 0
`

func TestFailingPluginLeavesNothing(t *testing.T) {
	env := newTestEnv(t, `{"type":"e2e-fail"}`)
	if err := os.WriteFile(filepath.Join(env.extraBin, "e2e-fail"), []byte(failingPlugin), 0o755); err != nil {
		t.Fatal(err)
	}
	m := env.manager(t)
	_, err := m.Setup(context.Background(), podRequest("e2e-fail"))
	if !errors.Is(err, ErrPlugin) || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("Setup error = %v, want ErrPlugin with the plugin's message", err)
	}
	env.assertNoTrace(t, m, "e2e-fail", testSubnet4[:len("10.123.0.")])
	if err := m.Teardown(context.Background(), "e2e-fail"); err != nil {
		t.Errorf("Teardown after failed Setup: %v", err)
	}
}

// A new Manager (a restarted daemon) tears down from the record, even after
// the conf dir changed.
func TestTeardownAfterRestart(t *testing.T) {
	env := newTestEnv(t)
	m := env.manager(t)
	pn, err := m.Setup(context.Background(), podRequest("e2e-restart"))
	if err != nil {
		t.Fatal(err)
	}
	needles := ruleNeedles(pn)
	_ = pn.CloseTaps()
	if err := os.Remove(filepath.Join(env.confDir, "10-test.conflist")); err != nil {
		t.Fatal(err)
	}
	m2 := env.manager(t)
	if st := m2.Status(); st.Ready {
		t.Errorf("Status with an empty conf dir is ready")
	}
	if err := m2.Teardown(context.Background(), "e2e-restart"); err != nil {
		t.Fatal(err)
	}
	env.assertNoTrace(t, m2, "e2e-restart", needles...)
}

// BenchmarkSetupTeardown measures one pod's network set up and torn down
// with the reference plugins, reporting the two halves separately.
func BenchmarkSetupTeardown(b *testing.B) {
	env := newTestEnv(b)
	m := env.manager(b)
	ctx := context.Background()
	var setup, teardown time.Duration
	n := 0
	for b.Loop() {
		id := fmt.Sprintf("e2e-bench-%d", n)
		n++
		start := time.Now()
		pn, err := m.Setup(ctx, podRequest(id))
		if err != nil {
			b.Fatal(err)
		}
		setup += time.Since(start)
		_ = pn.CloseTaps()
		start = time.Now()
		if err := m.Teardown(ctx, id); err != nil {
			b.Fatal(err)
		}
		teardown += time.Since(start)
	}
	b.ReportMetric(float64(setup.Milliseconds())/float64(n), "setup-ms/op")
	b.ReportMetric(float64(teardown.Milliseconds())/float64(n), "teardown-ms/op")
}
