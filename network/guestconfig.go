package network

import (
	"fmt"
	"net"
	"net/netip"

	current "github.com/containernetworking/cni/pkg/types/100"
)

// GuestConfig is the network configuration the guest agent applies inside
// the VM. The host-side veth keeps no address of its own use: the guest NIC
// whose MAC is Interfaces[i].MAC takes the veth's identity (name, MAC, MTU,
// addresses), so the CNI result describes the guest.
//
// The agent must, in order:
//  1. for each Interface: find the guest NIC by MAC, rename it to Name
//     (while down), set MTU, add every address in Addresses (IPv4 and IPv6,
//     with their prefix length, so the kernel adds the connected routes),
//     and bring it up;
//  2. add Routes in order: Dst is always a valid prefix (0.0.0.0/0 or ::/0
//     for default routes), Gateway is the zero Addr for an on-link route,
//     InterfaceMAC names the NIC the route leaves by. A gateway outside the
//     interface's subnets must be added on-link;
//  3. write resolv.conf from DNS (nameserver lines, one search line,
//     one options line) and set Hostname when it is not empty.
//
// It is plain data: podvm converts it to the agent protocol.
type GuestConfig struct {
	Interfaces []Interface
	Routes     []Route
	DNS        DNS
	Hostname   string
}

// Interface is one guest NIC.
type Interface struct {
	MAC       net.HardwareAddr
	Name      string
	MTU       int
	Addresses []netip.Prefix
}

// Route is one guest route.
type Route struct {
	Dst          netip.Prefix
	Gateway      netip.Addr
	InterfaceMAC net.HardwareAddr
}

// DNS is resolver configuration (CRI DNSConfig, CNI result DNS).
type DNS struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

// nicInfo is what the host learned about one wired CNI interface.
type nicInfo struct {
	Name string
	MAC  net.HardwareAddr
	MTU  int
}

// sandboxInterfaces returns the indexes in res.Interfaces of the interfaces
// inside the pod namespace (those with a sandbox), in result order.
func sandboxInterfaces(res *current.Result) []int {
	var idx []int
	for i, itf := range res.Interfaces {
		if itf != nil && itf.Sandbox != "" {
			idx = append(idx, i)
		}
	}
	return idx
}

// buildGuestConfig turns a CNI result into the guest's configuration.
// nics are the wired sandbox interfaces in sandboxInterfaces order, or the
// single configured interface when the result names none; an IP without an
// interface index belongs to the first of them.
func buildGuestConfig(res *current.Result, nics []nicInfo, req PodRequest) (GuestConfig, error) {
	if len(nics) == 0 {
		return GuestConfig{}, fmt.Errorf("CNI result has no interface in the pod namespace: %w", ErrPlugin)
	}
	gc := GuestConfig{Hostname: req.Hostname}
	for _, n := range nics {
		gc.Interfaces = append(gc.Interfaces, Interface{MAC: n.MAC, Name: n.Name, MTU: n.MTU})
	}
	sbx := sandboxInterfaces(res)
	for _, ip := range res.IPs {
		p, err := prefixOf(ip.Address)
		if err != nil {
			return GuestConfig{}, err
		}
		slot := 0
		if ip.Interface != nil {
			slot = indexOf(sbx, *ip.Interface)
			if slot < 0 {
				continue // an address on a host-side interface (bridge, veth peer)
			}
		}
		gc.Interfaces[slot].Addresses = append(gc.Interfaces[slot].Addresses, p)
	}
	for _, r := range res.Routes {
		gw := r.GW
		if gw == nil {
			gw = familyGateway(res, sbx, r.Dst.IP.To4() != nil)
		}
		route, err := guestRoute(r.Dst, gw, gc.Interfaces)
		if err != nil {
			return GuestConfig{}, err
		}
		gc.Routes = append(gc.Routes, route)
	}
	if req.DNS != nil {
		gc.DNS = *req.DNS
	} else {
		gc.DNS = DNS{Servers: res.DNS.Nameservers, Searches: res.DNS.Search, Options: res.DNS.Options}
	}
	return gc, nil
}

// familyGateway is the gateway a route without one takes, as libcni's
// ipam.ConfigureIface does it in a container: the gateway of the last
// address of the route's family on a sandbox interface. nil keeps the
// route on-link.
func familyGateway(res *current.Result, sbx []int, v4 bool) net.IP {
	var gw net.IP
	for _, ip := range res.IPs {
		if ip.Gateway == nil || (ip.Address.IP.To4() != nil) != v4 {
			continue
		}
		if ip.Interface != nil && indexOf(sbx, *ip.Interface) < 0 {
			continue
		}
		gw = ip.Gateway
	}
	return gw
}

// guestRoute picks the interface a route leaves by: the one with an
// address whose subnet holds the gateway (or, on-link, the destination),
// else the first.
func guestRoute(dst net.IPNet, gw net.IP, itfs []Interface) (Route, error) {
	d, err := prefixOf(dst)
	if err != nil {
		return Route{}, err
	}
	r := Route{Dst: d.Masked(), InterfaceMAC: itfs[0].MAC}
	probe := d.Addr()
	if gw != nil {
		a, ok := netip.AddrFromSlice(gw)
		if !ok {
			return Route{}, fmt.Errorf("route %s: bad gateway %v: %w", d, gw, ErrPlugin)
		}
		r.Gateway, probe = a.Unmap(), a.Unmap()
	}
	for _, itf := range itfs {
		for _, a := range itf.Addresses {
			if a.Masked().Contains(probe) {
				r.InterfaceMAC = itf.MAC
				return r, nil
			}
		}
	}
	return r, nil
}

func prefixOf(n net.IPNet) (netip.Prefix, error) {
	a, ok := netip.AddrFromSlice(n.IP)
	ones, bits := n.Mask.Size()
	if !ok || bits == 0 {
		return netip.Prefix{}, fmt.Errorf("bad address %v in CNI result: %w", n, ErrPlugin)
	}
	a = a.Unmap()
	if a.BitLen() != bits {
		// A 16-byte IPv4 address with a 4-byte mask or the reverse.
		if !a.Is4() || bits != 128 || ones < 96 {
			return netip.Prefix{}, fmt.Errorf("address %v: mask length %d does not fit: %w", n, bits, ErrPlugin)
		}
		ones -= 96
	}
	return netip.PrefixFrom(a, ones), nil
}

func indexOf(xs []int, x int) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

// podIPs orders the pod's addresses for PodSandboxStatus: the first IPv4
// address is the primary IP (kubelet's dual-stack convention, as
// containerd's default), the rest follow in result order.
func podIPs(gc GuestConfig) []netip.Addr {
	var v4, other []netip.Addr
	for _, itf := range gc.Interfaces {
		for _, p := range itf.Addresses {
			if p.Addr().Is4() {
				v4 = append(v4, p.Addr())
			} else {
				other = append(other, p.Addr())
			}
		}
	}
	return append(v4, other...)
}
