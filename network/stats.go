package network

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// InterfaceStats are one pod interface's counters as the pod sees them:
// receive is traffic to the pod.
type InterfaceStats struct {
	// Name is the interface's name in the pod namespace, which the guest
	// NIC takes (see GuestConfig).
	Name                                    string
	RxBytes, RxPackets, RxErrors, RxDropped uint64
	TxBytes, TxPackets, TxErrors, TxDropped uint64
}

// Stats returns the counters of the pod's CNI interfaces, in the order
// Setup wired them (the first is the primary), read with netlink inside
// the pod namespace. They are the host's counters of the veth (or other
// CNI link) whose traffic the guest's NIC carries, so a guest cannot
// misreport its own traffic. A pod without a network is ErrNotFound.
//
// It takes no pod lock: a metrics scrape must not wait for a CNI ADD of
// the same pod, and a Teardown that runs meanwhile only makes the
// counters the last ones of a namespace on its way out.
func (m *Manager) Stats(ctx context.Context, podID string) ([]InterfaceStats, error) {
	if err := validatePodID(podID); err != nil {
		return nil, fmt.Errorf("network stats of pod %q: %w", podID, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("network stats of pod %q: %w", podID, err)
	}
	rec, err := m.records.get(podID)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("network stats of pod %q: %w", podID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("network stats of pod %q: %w", podID, err)
	}
	names, err := m.interfaceNames(rec)
	if err != nil {
		return nil, fmt.Errorf("network stats of pod %q: %w", podID, err)
	}
	out, err := linkStats(rec.NetNS, names)
	if err != nil {
		return nil, fmt.Errorf("network stats of pod %q: %w", podID, err)
	}
	return out, nil
}

// interfaceNames are the pod's wired interfaces, as Setup's taps step
// chose them: the sandbox interfaces of the cached CNI result, or the
// configured interface when the result names none or was not cached.
func (m *Manager) interfaceNames(rec podRecord) ([]string, error) {
	list, err := libcni.NetworkConfFromBytes(rec.ConfList)
	if err != nil {
		return nil, fmt.Errorf("recorded network config: %w", err)
	}
	res, err := m.cni.GetNetworkListCachedResult(list, runtimeConf(rec.Request, rec.NetNS, rec.IfName))
	if err != nil {
		return nil, fmt.Errorf("cached CNI result: %w", err)
	}
	var cur *current.Result
	if res != nil {
		if cur, err = current.NewResultFromResult(res); err != nil {
			return nil, fmt.Errorf("cached CNI result: %w", err)
		}
	}
	return podInterfaceNames(cur, rec.IfName), nil
}

// podInterfaceNames returns the names of the sandbox interfaces of res in
// result order, or ifName when res (which may be nil) names none.
func podInterfaceNames(res *current.Result, ifName string) []string {
	if res == nil {
		return []string{ifName}
	}
	var names []string
	for _, i := range sandboxInterfaces(res) {
		names = append(names, res.Interfaces[i].Name)
	}
	if len(names) == 0 {
		return []string{ifName}
	}
	return names
}

// linkStats reads the counters of the links names in the namespace at
// nsPath. A path that is not a mounted namespace (removed by Teardown, or
// left by a Setup that crashed) is ErrNotFound.
func linkStats(nsPath string, names []string) ([]InterfaceStats, error) {
	if !isNetNS(nsPath) {
		return nil, fmt.Errorf("netns %s: %w", nsPath, ErrNotFound)
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("open netns: %w", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink in netns: %w", err)
	}
	defer h.Close()
	out := make([]InterfaceStats, 0, len(names))
	for _, name := range names {
		l, err := h.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", name, err)
		}
		s := l.Attrs().Statistics
		if s == nil {
			return nil, fmt.Errorf("interface %s: the kernel reported no counters", name)
		}
		out = append(out, interfaceStats(name, s))
	}
	return out, nil
}

// interfaceStats converts the kernel's counters of a link in the pod
// namespace.
func interfaceStats(name string, s *netlink.LinkStatistics) InterfaceStats {
	return InterfaceStats{
		Name:    name,
		RxBytes: s.RxBytes, RxPackets: s.RxPackets, RxErrors: s.RxErrors, RxDropped: s.RxDropped,
		TxBytes: s.TxBytes, TxPackets: s.TxPackets, TxErrors: s.TxErrors, TxDropped: s.TxDropped,
	}
}
