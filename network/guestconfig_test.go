package network

import (
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"
)

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func parseResult(t *testing.T, js string) *current.Result {
	t.Helper()
	r, err := current.NewResult([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// A bridge + host-local dual-stack result, as the reference plugins print it.
const dualStackResult = `{
  "cniVersion": "1.0.0",
  "interfaces": [
    {"name": "pvtest0", "mac": "aa:aa:aa:aa:aa:01"},
    {"name": "veth12ab", "mac": "aa:aa:aa:aa:aa:02"},
    {"name": "eth0", "mac": "0a:58:0a:7b:00:05", "sandbox": "/state/netns/pod1"}
  ],
  "ips": [
    {"interface": 2, "address": "fd12:3456:789a::5/64", "gateway": "fd12:3456:789a::1"},
    {"interface": 2, "address": "10.123.0.5/24", "gateway": "10.123.0.1"},
    {"interface": 0, "address": "10.123.0.1/24"}
  ],
  "routes": [
    {"dst": "0.0.0.0/0", "gw": "10.123.0.1"},
    {"dst": "::/0", "gw": "fd12:3456:789a::1"}
  ],
  "dns": {"nameservers": ["10.123.0.1"], "search": ["example.test"], "options": ["ndots:2"]}
}`

func TestBuildGuestConfigDualStack(t *testing.T) {
	mac := mustMAC(t, "0a:58:0a:7b:00:05")
	res := parseResult(t, dualStackResult)
	req := PodRequest{ID: "pod1", Hostname: "web-0"}
	gc, err := buildGuestConfig(res, []nicInfo{{Name: "eth0", MAC: mac, MTU: 1450}}, req)
	if err != nil {
		t.Fatal(err)
	}
	want := GuestConfig{
		Interfaces: []Interface{{
			MAC: mac, Name: "eth0", MTU: 1450,
			Addresses: []netip.Prefix{netip.MustParsePrefix("fd12:3456:789a::5/64"), netip.MustParsePrefix("10.123.0.5/24")},
		}},
		Routes: []Route{
			{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.123.0.1"), InterfaceMAC: mac},
			{Dst: netip.MustParsePrefix("::/0"), Gateway: netip.MustParseAddr("fd12:3456:789a::1"), InterfaceMAC: mac},
		},
		DNS:      DNS{Servers: []string{"10.123.0.1"}, Searches: []string{"example.test"}, Options: []string{"ndots:2"}},
		Hostname: "web-0",
	}
	if !reflect.DeepEqual(gc, want) {
		t.Errorf("GuestConfig =\n%+v\nwant\n%+v", gc, want)
	}
	ips := podIPs(gc)
	wantIPs := []netip.Addr{netip.MustParseAddr("10.123.0.5"), netip.MustParseAddr("fd12:3456:789a::5")}
	if !reflect.DeepEqual(ips, wantIPs) {
		t.Errorf("podIPs = %v, want %v (IPv4 first)", ips, wantIPs)
	}
}

// host-local routes without "gw" take the gateway of their family, as
// ipam.ConfigureIface applies them in a container.
func TestBuildGuestConfigRoutesWithoutGateway(t *testing.T) {
	mac := mustMAC(t, "0a:58:0a:7b:00:05")
	res := parseResult(t, strings.NewReplacer(`, "gw": "10.123.0.1"`, "", `, "gw": "fd12:3456:789a::1"`, "").Replace(dualStackResult))
	gc, err := buildGuestConfig(res, []nicInfo{{Name: "eth0", MAC: mac}}, PodRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Route{
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.123.0.1"), InterfaceMAC: mac},
		{Dst: netip.MustParsePrefix("::/0"), Gateway: netip.MustParseAddr("fd12:3456:789a::1"), InterfaceMAC: mac},
	}
	if !reflect.DeepEqual(gc.Routes, want) {
		t.Errorf("Routes = %+v, want %+v", gc.Routes, want)
	}
}

func TestBuildGuestConfigRequestDNSWins(t *testing.T) {
	res := parseResult(t, dualStackResult)
	dns := &DNS{Servers: []string{"10.96.0.10"}, Searches: []string{"ns.svc.cluster.local"}}
	gc, err := buildGuestConfig(res, []nicInfo{{Name: "eth0", MAC: mustMAC(t, "0a:58:0a:7b:00:05")}}, PodRequest{DNS: dns})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gc.DNS, *dns) {
		t.Errorf("DNS = %+v, want the request's %+v", gc.DNS, *dns)
	}
}

// Older plugins report IPs without interface indexes and no sandbox
// interface; routes may be on-link.
func TestBuildGuestConfigTwoInterfacesAndOnLink(t *testing.T) {
	m0, m1 := mustMAC(t, "02:00:00:00:00:01"), mustMAC(t, "02:00:00:00:00:02")
	res := parseResult(t, `{
	  "cniVersion": "1.0.0",
	  "interfaces": [
	    {"name": "eth0", "sandbox": "/ns"},
	    {"name": "host-side"},
	    {"name": "net1", "sandbox": "/ns"}
	  ],
	  "ips": [
	    {"address": "192.168.1.10/24"},
	    {"interface": 2, "address": "172.16.0.10/16"}
	  ],
	  "routes": [
	    {"dst": "172.17.0.0/16", "gw": "172.16.0.1"},
	    {"dst": "172.16.5.0/24"},
	    {"dst": "10.0.0.0/8"}
	  ]
	}`)
	gc, err := buildGuestConfig(res, []nicInfo{{Name: "eth0", MAC: m0}, {Name: "net1", MAC: m1}}, PodRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := gc.Interfaces[0].Addresses; !reflect.DeepEqual(got, []netip.Prefix{netip.MustParsePrefix("192.168.1.10/24")}) {
		t.Errorf("eth0 addresses = %v", got)
	}
	if got := gc.Interfaces[1].Addresses; !reflect.DeepEqual(got, []netip.Prefix{netip.MustParsePrefix("172.16.0.10/16")}) {
		t.Errorf("net1 addresses = %v", got)
	}
	wantMACs := []net.HardwareAddr{m1, m1, m0}
	for i, r := range gc.Routes {
		if r.InterfaceMAC.String() != wantMACs[i].String() {
			t.Errorf("route %s leaves by %s, want %s", r.Dst, r.InterfaceMAC, wantMACs[i])
		}
	}
	if gc.Routes[1].Gateway.IsValid() {
		t.Errorf("on-link route has gateway %s", gc.Routes[1].Gateway)
	}
}

func TestBuildGuestConfigErrors(t *testing.T) {
	res := parseResult(t, dualStackResult)
	if _, err := buildGuestConfig(res, nil, PodRequest{}); err == nil || !strings.Contains(err.Error(), "no interface") {
		t.Errorf("no NICs: error = %v", err)
	}
}

func TestPrefixOf(t *testing.T) {
	tests := []struct {
		in   net.IPNet
		want string
		ok   bool
	}{
		{net.IPNet{IP: net.ParseIP("10.1.2.3"), Mask: net.CIDRMask(24, 32)}, "10.1.2.3/24", true},
		{net.IPNet{IP: net.ParseIP("10.1.2.3").To4(), Mask: net.CIDRMask(24, 32)}, "10.1.2.3/24", true},
		{net.IPNet{IP: net.ParseIP("10.1.2.3"), Mask: net.CIDRMask(120, 128)}, "10.1.2.3/24", true},
		{net.IPNet{IP: net.ParseIP("fd00::1"), Mask: net.CIDRMask(64, 128)}, "fd00::1/64", true},
		{net.IPNet{IP: net.ParseIP("fd00::1"), Mask: net.CIDRMask(24, 32)}, "", false},
		{net.IPNet{IP: nil, Mask: net.CIDRMask(24, 32)}, "", false},
	}
	for _, tt := range tests {
		got, err := prefixOf(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got.String() != tt.want) {
			t.Errorf("prefixOf(%v) = %v, %v; want %s ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
