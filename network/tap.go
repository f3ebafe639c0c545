package network

import (
	"fmt"
	"net"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// tapFlags: one queue, no packet-info prefix, and a virtio-net header on
// every frame. Cloud Hypervisor requires IFF_VNET_HDR on the taps it is
// given; QEMU must be told vnet_hdr=on for the same fd (it probes the flag
// when the option is absent), which lets guests use checksum and
// segmentation offloads.
const tapFlags = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR

// wiredTap is a tap device redirected to and from a CNI veth.
type wiredTap struct {
	Name string
	File *os.File
	// MAC and MTU are the veth's: the guest NIC takes them so the address
	// the CNI result reports is the guest's own.
	MAC net.HardwareAddr
	MTU int
}

// wireTap creates tapName in the namespace at nsPath, matches it to the
// veth called vethName (MTU), brings it up and redirects every frame
// arriving on one to the egress of the other with tc mirred. h is a
// netlink handle bound to that namespace.
func wireTap(h *netlink.Handle, nsPath, vethName, tapName string) (*wiredTap, error) {
	veth, err := h.LinkByName(vethName)
	if err != nil {
		return nil, fmt.Errorf("CNI interface %s: %w", vethName, err)
	}
	f, err := openTap(nsPath, tapName)
	if err != nil {
		return nil, err
	}
	tap, err := h.LinkByName(tapName)
	if err == nil {
		err = linkTap(h, veth, tap)
	}
	if err != nil {
		// Closing the only fd of a non-persistent tap deletes it with its
		// qdisc and filters.
		_ = f.Close()
		return nil, fmt.Errorf("wire %s to %s: %w", tapName, vethName, err)
	}
	return &wiredTap{Name: tapName, File: f, MAC: veth.Attrs().HardwareAddr, MTU: veth.Attrs().MTU}, nil
}

func linkTap(h *netlink.Handle, veth, tap netlink.Link) error {
	if err := h.LinkSetMTU(tap, veth.Attrs().MTU); err != nil {
		return fmt.Errorf("set MTU: %w", err)
	}
	if err := h.LinkSetUp(tap); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	for _, l := range []netlink.Link{veth, tap} {
		if err := h.QdiscAdd(ingressQdisc(l)); err != nil {
			return fmt.Errorf("add ingress qdisc on %s: %w", l.Attrs().Name, err)
		}
	}
	if err := h.FilterAdd(redirectFilter(veth, tap)); err != nil {
		return fmt.Errorf("redirect %s to %s: %w", veth.Attrs().Name, tap.Attrs().Name, err)
	}
	if err := h.FilterAdd(redirectFilter(tap, veth)); err != nil {
		return fmt.Errorf("redirect %s to %s: %w", tap.Attrs().Name, veth.Attrs().Name, err)
	}
	return nil
}

func ingressQdisc(l netlink.Link) *netlink.Ingress {
	return &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: l.Attrs().Index,
		Handle:    netlink.MakeHandle(0xffff, 0),
		Parent:    netlink.HANDLE_INGRESS,
	}}
}

// redirectFilter sends every frame arriving on from out of to. u32 with an
// empty selector rather than matchall: cls_matchall is missing from some
// kernels (this project's CI host among them), cls_u32 is everywhere.
func redirectFilter(from, to netlink.Link) *netlink.U32 {
	return &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: from.Attrs().Index,
			Parent:    netlink.MakeHandle(0xffff, 0),
			Priority:  1,
			Protocol:  unix.ETH_P_ALL,
		},
		Actions: []netlink.Action{netlink.NewMirredAction(to.Attrs().Index)},
	}
}

// openTap creates a non-persistent tap inside the namespace at nsPath and
// returns its only fd: the device lives as long as that fd or a VMM's copy
// of it, so a VMM that exits leaves no tap behind. The fd is non-blocking
// as VMMs poll it; the flag is shared with the VMM's duplicate.
func openTap(nsPath, name string) (*os.File, error) {
	var fd int
	err := inNetNS(nsPath, func() error {
		var err error
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err == nil {
			ifr.SetUint16(tapFlags)
			err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
		}
		if err != nil {
			_ = unix.Close(fd)
			return fmt.Errorf("create tap %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}
