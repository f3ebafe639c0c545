package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
	"github.com/podvisor/podvisor/podvm/agent/initsys"
)

// ConfigureNetwork applies the pod's network configuration to the guest:
// interfaces (matched by MAC, renamed, MTU, addresses, up), routes,
// sysctls, the hostname, and the resolv.conf, hostname and hosts files
// containers bind-mount from ContainerConfig.NetDir. Applying the same
// configuration twice is harmless.
func (s *Service) ConfigureNetwork(ctx context.Context, cfg *agentpb.NetworkConfig) (*agentpb.Empty, error) {
	if err := validateNetwork(cfg); err != nil {
		return nil, toStatus(fmt.Errorf("configure network: %w", err))
	}
	s.netMu.Lock()
	defer s.netMu.Unlock()
	steps := []struct {
		name string
		fn   func(*agentpb.NetworkConfig) error
	}{
		{"interfaces", applyInterfaces},
		{"routes", applyRoutes},
		{"sysctls", applySysctls},
		{"hostname", applyHostname},
		{"files", func(c *agentpb.NetworkConfig) error { return writeNetFiles(s.cfg.Containers.NetDir(), c) }},
	}
	for _, st := range steps {
		if err := st.fn(cfg); err != nil {
			return nil, toStatus(fmt.Errorf("configure network: %s: %w", st.name, err))
		}
	}
	klog.InfoS("Configured network", "interfaces", len(cfg.GetInterfaces()), "routes", len(cfg.GetRoutes()), "hostname", cfg.GetHostname())
	return &agentpb.Empty{}, nil
}

func linkByMAC(mac string) (netlink.Link, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		if l.Attrs().HardwareAddr.String() == mac {
			return l, nil
		}
	}
	return nil, fmt.Errorf("no interface with MAC %s: %w", mac, ErrNotFound)
}

func applyInterfaces(cfg *agentpb.NetworkConfig) error {
	for _, itf := range cfg.GetInterfaces() {
		mac, _ := parseMAC(itf.GetMac())
		link, err := linkByMAC(mac)
		if err != nil {
			return err
		}
		if link.Attrs().Name != itf.GetName() {
			// An interface can only be renamed while down.
			if err := netlink.LinkSetDown(link); err != nil {
				return fmt.Errorf("%s down: %w", link.Attrs().Name, err)
			}
			if err := netlink.LinkSetName(link, itf.GetName()); err != nil {
				return fmt.Errorf("rename %s to %s: %w", link.Attrs().Name, itf.GetName(), err)
			}
		}
		if m := int(itf.GetMtu()); m != 0 && link.Attrs().MTU != m {
			if err := netlink.LinkSetMTU(link, m); err != nil {
				return fmt.Errorf("%s mtu %d: %w", itf.GetName(), m, err)
			}
		}
		for _, a := range itf.GetAddresses() {
			addr, err := netlink.ParseAddr(a)
			if err != nil {
				return err
			}
			if err := netlink.AddrReplace(link, addr); err != nil {
				return fmt.Errorf("%s address %s: %w", itf.GetName(), a, err)
			}
		}
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("%s up: %w", itf.GetName(), err)
		}
	}
	return nil
}

func applyRoutes(cfg *agentpb.NetworkConfig) error {
	for i, r := range cfg.GetRoutes() {
		route := &netlink.Route{}
		if r.GetInterfaceMac() != "" {
			mac, _ := parseMAC(r.GetInterfaceMac())
			link, err := linkByMAC(mac)
			if err != nil {
				return err
			}
			route.LinkIndex = link.Attrs().Index
		}
		if r.GetGateway() != "" {
			route.Gw = net.ParseIP(r.GetGateway())
		}
		if r.GetDestination() != "" {
			_, dst, _ := net.ParseCIDR(r.GetDestination())
			route.Dst = dst
		} else if gw, err := netip.ParseAddr(r.GetGateway()); err == nil && gw.Is6() {
			route.Dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		}
		err := netlink.RouteReplace(route)
		if errors.Is(err, syscall.ENETUNREACH) && route.Gw != nil && route.LinkIndex != 0 {
			// A gateway outside the interface's subnets (CNI plugins
			// that give /32 addresses) is reached on-link.
			route.Flags = int(netlink.FLAG_ONLINK)
			err = netlink.RouteReplace(route)
		}
		if err != nil {
			return fmt.Errorf("routes[%d]: %w", i, err)
		}
	}
	return nil
}

func applySysctls(cfg *agentpb.NetworkConfig) error {
	for _, sc := range cfg.GetSysctls() {
		p := filepath.Join("/proc/sys", strings.ReplaceAll(sc.GetKey(), ".", "/"))
		if err := os.WriteFile(p, []byte(sc.GetValue()), 0); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("sysctl %s: %w", sc.GetKey(), ErrNotFound)
			}
			return fmt.Errorf("sysctl %s: %w", sc.GetKey(), err)
		}
	}
	return nil
}

func applyHostname(cfg *agentpb.NetworkConfig) error {
	if cfg.GetHostname() == "" {
		return nil
	}
	return initsys.SetHostname(cfg.GetHostname())
}
