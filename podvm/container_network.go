package podvm

import (
	"context"
	"fmt"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// NetworkConfig is what the guest applies for the pod's network: the
// interfaces the CNI result describes (matched by MAC), routes, DNS, the
// pod's hostname and namespaced sysctls. The agent then writes resolv.conf,
// hostname and hosts in GuestNetDir for containers to bind-mount.
type NetworkConfig struct {
	Interfaces []NetworkInterface
	Routes     []NetworkRoute
	DNS        DNSConfig
	Hostname   string
	// Sysctls are net.*, kernel.shm*, kernel.msg*, kernel.sem and
	// fs.mqueue.* keys only.
	Sysctls map[string]string
}

// NetworkInterface is a guest NIC, selected by MAC and renamed to Name.
type NetworkInterface struct {
	MAC  string
	Name string
	MTU  uint32
	// Addresses in CIDR notation.
	Addresses []string
}

// NetworkRoute is a route; an empty Destination is the default route.
type NetworkRoute struct {
	Destination  string
	Gateway      string
	InterfaceMAC string
}

// DNSConfig becomes resolv.conf.
type DNSConfig struct {
	Servers, Searches, Options []string
}

// ConfigureNetwork applies cfg in the guest.
func (v *VM) ConfigureNetwork(ctx context.Context, cfg NetworkConfig) error {
	req := &agentpb.NetworkConfig{
		Hostname: cfg.Hostname,
		Dns: &agentpb.DNS{
			Servers:  cfg.DNS.Servers,
			Searches: cfg.DNS.Searches,
			Options:  cfg.DNS.Options,
		},
	}
	for _, i := range cfg.Interfaces {
		req.Interfaces = append(req.Interfaces, &agentpb.Interface{Mac: i.MAC, Name: i.Name, Mtu: i.MTU, Addresses: i.Addresses})
	}
	for _, r := range cfg.Routes {
		req.Routes = append(req.Routes, &agentpb.Route{Destination: r.Destination, Gateway: r.Gateway, InterfaceMac: r.InterfaceMAC})
	}
	for k, val := range cfg.Sysctls {
		req.Sysctls = append(req.Sysctls, &agentpb.Sysctl{Key: k, Value: val})
	}
	if _, err := v.agent.client.ConfigureNetwork(ctx, req); err != nil {
		return fmt.Errorf("configure network of %s: %w", v.id, err)
	}
	return nil
}
