package main

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/cri"
	"github.com/podvisor/podvisor/cri/errdefs"
	"github.com/podvisor/podvisor/network"
)

// networkAdapter serves cri.Network from the CNI network manager.
type networkAdapter struct{ m *network.Manager }

var (
	_ cri.Network            = networkAdapter{}
	_ cri.NetworkStatsReader = networkAdapter{}
)

// podNetwork is a pod's network as the VM adapter needs it: the taps for
// the VMM and the configuration for the guest.
type podNetwork struct{ *network.PodNetwork }

func (p podNetwork) NetNSPath() string { return p.PodNetwork.NetNSPath }

func (p podNetwork) IPs() []string {
	var out []string
	for _, ip := range p.PodNetwork.IPs {
		out = append(out, ip.String())
	}
	return out
}

func networkErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, network.ErrInvalidArgument):
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	case errors.Is(err, network.ErrNotReady):
		return fmt.Errorf("%w: %w", errdefs.ErrFailedPrecondition, err)
	case errors.Is(err, network.ErrAlreadyExists):
		return fmt.Errorf("%w: %w", errdefs.ErrAlreadyExists, err)
	case errors.Is(err, network.ErrNotFound):
		return fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	case errors.Is(err, network.ErrPlugin):
		return fmt.Errorf("%w: %w", errdefs.ErrUnavailable, err)
	}
	return err
}

func (a networkAdapter) Setup(ctx context.Context, req cri.NetworkRequest) (cri.PodNetwork, error) {
	nr := network.PodRequest{ID: req.SandboxID, Name: req.Name, Namespace: req.Namespace, UID: req.UID, Hostname: req.Hostname}
	for _, pm := range req.PortMappings {
		nr.PortMappings = append(nr.PortMappings, network.PortMapping{
			Protocol: pm.Protocol.String(), ContainerPort: pm.ContainerPort, HostPort: pm.HostPort, HostIP: pm.HostIp,
		})
	}
	if req.DNS != nil {
		nr.DNS = &network.DNS{Servers: req.DNS.Servers, Searches: req.DNS.Searches, Options: req.DNS.Options}
	}
	pn, err := a.m.Setup(ctx, nr)
	if err != nil {
		return nil, networkErr(err)
	}
	return podNetwork{pn}, nil
}

func (a networkAdapter) Teardown(ctx context.Context, sandboxID string) error {
	return networkErr(a.m.Teardown(ctx, sandboxID))
}

// RemoveOthers tears down the pod networks of sandboxes not in keep (CNI
// DEL from the cached result, then the netns).
func (a networkAdapter) RemoveOthers(ctx context.Context, keep []string) error {
	pods, err := a.m.Pods()
	if err != nil {
		return networkErr(err)
	}
	var errs []error
	for _, id := range pods {
		if slices.Contains(keep, id) {
			continue
		}
		klog.InfoS("Tearing down a pod network no sandbox owns", "podSandboxID", id)
		errs = append(errs, a.m.Teardown(ctx, id))
	}
	return networkErr(errors.Join(errs...))
}

func (a networkAdapter) Status(context.Context) error {
	st := a.m.Status()
	if st.Ready {
		return nil
	}
	return fmt.Errorf("%s: %s", st.Reason, st.Message)
}

// NetworkStats reads the counters of the pod's interfaces in its network
// namespace, on the host: the guest is not trusted to count its traffic.
func (a networkAdapter) NetworkStats(ctx context.Context, sandboxID string) ([]cri.InterfaceStats, error) {
	ifs, err := a.m.Stats(ctx, sandboxID)
	if err != nil {
		return nil, networkErr(err)
	}
	out := make([]cri.InterfaceStats, 0, len(ifs))
	for _, i := range ifs {
		out = append(out, criInterfaceStats(i))
	}
	return out, nil
}

func criInterfaceStats(i network.InterfaceStats) cri.InterfaceStats {
	return cri.InterfaceStats{
		Name:    i.Name,
		RxBytes: i.RxBytes, RxPackets: i.RxPackets, RxErrors: i.RxErrors, RxDropped: i.RxDropped,
		TxBytes: i.TxBytes, TxPackets: i.TxPackets, TxErrors: i.TxErrors, TxDropped: i.TxDropped,
	}
}
