package network

import (
	"context"
	"errors"
	"fmt"
	"os"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/hypervisor"
)

// Setup creates the pod's network namespace, runs CNI ADD in it and wires
// a tap to every interface CNI put there. On error everything it created
// is rolled back (CNI DEL included); if the rollback itself fails, the
// pod's record stays so Teardown can finish it.
func (m *Manager) Setup(ctx context.Context, req PodRequest) (_ *PodNetwork, retErr error) {
	if err := req.validate(); err != nil {
		return nil, fmt.Errorf("set up network of pod %q: %w", req.ID, err)
	}
	net, err := m.network()
	if err != nil {
		return nil, fmt.Errorf("set up network of pod %q: %w", req.ID, err)
	}
	defer m.locks.lock(req.ID)()
	if _, err := m.records.get(req.ID); !errors.Is(err, os.ErrNotExist) {
		if err == nil {
			err = ErrAlreadyExists
		}
		return nil, fmt.Errorf("set up network of pod %q: %w", req.ID, err)
	}

	s := &setup{m: m, net: net, rec: podRecord{
		Request:  req,
		NetNS:    m.NetNSPath(req.ID),
		IfName:   m.cfg.IfName,
		ConfFile: net.File,
		ConfList: net.List.Bytes,
	}}
	defer func() {
		if retErr != nil {
			retErr = fmt.Errorf("set up network of pod %q: %w", req.ID, errors.Join(retErr, s.rollback(ctx)))
		}
	}()
	for _, step := range []struct {
		name string
		fn   func(context.Context) error
	}{
		{"record", s.record},
		{"netns", s.netns},
		{"CNI ADD", s.cniAdd},
		{"taps", s.taps},
		{"guest config", s.guestConfig},
	} {
		if err := step.fn(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", step.name, err)
		}
	}
	klog.InfoS("Set up pod network", "podSandboxID", req.ID, "network", net.List.Name, "ips", s.out.IPs, "netns", s.rec.NetNS)
	klog.V(4).InfoS("Pod network guest config", "podSandboxID", req.ID, "guest", s.out.Guest)
	return &s.out, nil
}

// setup is one Setup call's progress: each step fills what the next uses
// and pushes its undo.
type setup struct {
	m      *Manager
	net    *network
	rec    podRecord
	undo   undoStack
	result *current.Result
	nics   []nicInfo
	out    PodNetwork
	// recorded is set once the record exists; it is removed last, and only
	// when every other undo step succeeded.
	recorded bool
}

func (s *setup) rollback(ctx context.Context) error {
	err := s.undo.run(ctx, s.rec.Request.ID)
	if err != nil || !s.recorded {
		return err
	}
	return s.m.records.remove(s.rec.Request.ID)
}

func (s *setup) record(context.Context) error {
	if err := s.m.records.put(s.rec); err != nil {
		return err
	}
	s.recorded = true
	return nil
}

func (s *setup) netns(context.Context) error {
	if err := createNetNS(s.rec.NetNS); err != nil {
		return err
	}
	s.undo.push("remove netns", func(context.Context) error { return removeNetNS(s.rec.NetNS) })
	return nil
}

// cniAdd pushes DEL before ADD runs: a failed ADD may have left addresses
// reserved or rules installed, and the CNI spec wants DEL after it.
func (s *setup) cniAdd(ctx context.Context) error {
	s.undo.push("CNI DEL", func(ctx context.Context) error { return s.m.cniDel(ctx, s.rec) })
	rt := runtimeConf(s.rec.Request, s.rec.NetNS, s.rec.IfName)
	res, err := addChain(ctx, s.m.cni, s.net.List, rt)
	if err != nil {
		return fmt.Errorf("network %q: %v: %w", s.net.List.Name, err, ErrPlugin)
	}
	s.result, err = current.NewResultFromResult(res)
	if err != nil {
		return fmt.Errorf("network %q: convert result: %v: %w", s.net.List.Name, err, ErrPlugin)
	}
	return nil
}

// taps wires one tap per sandbox interface of the result, or to the
// configured interface when the result names none.
func (s *setup) taps(context.Context) error {
	names := []string{s.rec.IfName}
	if idx := sandboxInterfaces(s.result); len(idx) > 0 {
		names = names[:0]
		for _, i := range idx {
			names = append(names, s.result.Interfaces[i].Name)
		}
	}
	ns, err := netns.GetFromPath(s.rec.NetNS)
	if err != nil {
		return fmt.Errorf("open netns: %w", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in netns: %w", err)
	}
	defer h.Close()
	s.undo.push("close taps", func(context.Context) error { return s.out.CloseTaps() })
	for i, name := range names {
		t, err := wireTap(h, s.rec.NetNS, name, fmt.Sprintf("tap%d", i))
		if err != nil {
			return err
		}
		s.out.NICs = append(s.out.NICs, hypervisor.NIC{ID: fmt.Sprintf("net%d", i), MAC: t.MAC, MTU: t.MTU, Tap: t.File})
		s.nics = append(s.nics, nicInfo{Name: name, MAC: t.MAC, MTU: t.MTU})
	}
	return nil
}

func (s *setup) guestConfig(context.Context) error {
	gc, err := buildGuestConfig(s.result, s.nics, s.rec.Request)
	if err != nil {
		return err
	}
	s.out.NetNSPath = s.rec.NetNS
	s.out.Guest = gc
	s.out.IPs = podIPs(gc)
	return nil
}
