//go:build e2e

package network

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestStatsCountPodTraffic(t *testing.T) {
	env := newTestEnv(t)
	m := env.manager(t)
	req := podRequest("e2e-stats")
	pn := env.setup(t, m, req)
	ctx := context.Background()

	before, err := m.Stats(ctx, req.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 1 || before[0].Name != "eth0" {
		t.Fatalf("Stats = %+v, want eth0 alone (not the tap)", before)
	}

	// The guest's ARP request leaves the pod through the veth (transmit),
	// the gateway's reply enters it (receive).
	nic := pn.NICs[0]
	if err := arpRoundTrip(nic.Tap, nic.MAC, pn.PrimaryIP(), netip.MustParseAddr(testGW4)); err != nil {
		t.Fatal(err)
	}
	after, err := m.Stats(ctx, req.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, a := before[0], after[0]
	if a.TxPackets <= b.TxPackets || a.TxBytes < b.TxBytes+42 || a.RxPackets <= b.RxPackets || a.RxBytes < b.RxBytes+42 {
		t.Errorf("counters did not follow an ARP round trip: before %+v, after %+v", b, a)
	}
	// Frames the guest sends with no answer count as transmitted only.
	// They go to the bridge itself: the hairpin mode of the test network
	// reflects broadcasts and floods back to the pod.
	const sent = 20
	br, err := netlink.LinkByName(testBridge)
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, vnetHdrLen, vnetHdrLen+60)
	frame = append(frame, br.Attrs().HardwareAddr...)
	frame = append(frame, nic.MAC...)
	frame = append(frame, 0x88, 0xb5) // local experimental EtherType
	frame = append(frame, make([]byte, 46)...)
	for range sent {
		if _, err := nic.Tap.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	b = a
	if after, err = m.Stats(ctx, req.ID); err != nil {
		t.Fatal(err)
	}
	a = after[0]
	if a.TxPackets < b.TxPackets+sent || a.RxPackets >= b.RxPackets+sent {
		t.Errorf("%d frames sent by the guest: before %+v, after %+v", sent, b, a)
	}

	// They are the veth's own counters, as the kernel reports them.
	veth, _ := inspectPodLinks(t, pn.NetNSPath)
	if s := veth.Attrs().Statistics; s.RxPackets < a.RxPackets || s.TxPackets < a.TxPackets {
		t.Errorf("eth0 counters %+v behind Stats %+v", s, a)
	}

	if err := pn.CloseTaps(); err != nil {
		t.Fatal(err)
	}
	if err := m.Teardown(ctx, req.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Stats(ctx, req.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stats after Teardown = %v, want ErrNotFound", err)
	}
}
