// Package vmmselect chooses the VMM driver podvisor runs pod VMs with:
// Cloud Hypervisor where it can boot a guest, QEMU everywhere else.
package vmmselect

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/cloudhypervisor"
	"github.com/podvisor/podvisor/hypervisor/qemu"
)

// Driver names accepted by Choose.
const (
	Auto            = "auto"
	CloudHypervisor = cloudhypervisor.DriverName
	QEMU            = qemu.DriverName
)

// ErrUnavailable means the requested driver cannot run on this host.
var ErrUnavailable = errors.New("VMM unavailable")

// Options configure the choice.
type Options struct {
	// Driver is Auto, CloudHypervisor or QEMU.
	Driver string
	// Kernel is the guest kernel used to probe whether KVM can boot a guest.
	Kernel string
	// ProbeCache, if set, is a file that keeps the KVM probe's answer for
	// this boot of the host and this kernel, so that a daemon restart
	// does not boot a probe guest again (up to 10 s without KVM).
	ProbeCache      string
	QEMU            qemu.Options
	CloudHypervisor cloudhypervisor.Options
}

// Choice is the selected driver and whether it uses KVM.
type Choice struct {
	Driver hypervisor.Driver
	KVM    bool
	Reason string
}

// host abstracts the two facts the choice rests on, so that the decision
// table is testable without KVM or Cloud Hypervisor.
type host interface {
	cloudHypervisorAvailable() (bool, string)
	kvmBootsGuest(ctx context.Context) (bool, string)
}

// Choose picks the driver, probing KVM once (it boots the guest kernel
// briefly). The choice and its reason are logged.
func Choose(ctx context.Context, opts Options) (Choice, error) {
	q := qemu.New(opts.QEMU)
	c, err := decide(ctx, opts.Driver, realHost{q: q, kernel: opts.Kernel, cache: opts.ProbeCache})
	if err != nil {
		return Choice{}, err
	}
	switch c.name {
	case CloudHypervisor:
		d, err := cloudhypervisor.New(opts.CloudHypervisor)
		if err != nil {
			return Choice{}, err
		}
		c.Choice.Driver = d
	default:
		c.Choice.Driver = q
	}
	klog.InfoS("VMM driver selected", "driver", c.name, "kvm", c.KVM, "reason", c.Reason)
	return c.Choice, nil
}

type decision struct {
	Choice
	name string
}

func decide(ctx context.Context, want string, h host) (decision, error) {
	if want == "" {
		want = Auto
	}
	switch want {
	case Auto, CloudHypervisor, QEMU:
	default:
		return decision{}, fmt.Errorf("driver %q: want %q, %q or %q", want, Auto, CloudHypervisor, QEMU)
	}
	kvm, kvmWhy := h.kvmBootsGuest(ctx)
	if want == QEMU {
		return decision{Choice{KVM: kvm, Reason: "configured; " + kvmWhy}, QEMU}, nil
	}
	chOK, chWhy := h.cloudHypervisorAvailable()
	switch {
	case chOK && kvm:
		return decision{Choice{KVM: true, Reason: "cloud-hypervisor available and KVM boots a guest"}, CloudHypervisor}, nil
	case want == CloudHypervisor && !chOK:
		return decision{}, fmt.Errorf("%w: cloud-hypervisor: %s", ErrUnavailable, chWhy)
	case want == CloudHypervisor:
		return decision{}, fmt.Errorf("%w: cloud-hypervisor needs KVM: %s", ErrUnavailable, kvmWhy)
	case !chOK:
		return decision{Choice{KVM: kvm, Reason: "cloud-hypervisor unavailable (" + chWhy + "); " + kvmWhy}, QEMU}, nil
	default:
		return decision{Choice{KVM: false, Reason: "KVM cannot boot a guest (" + kvmWhy + "); QEMU uses software emulation"}, QEMU}, nil
	}
}

type realHost struct {
	q      *qemu.Driver
	kernel string
	cache  string
}

func (h realHost) cloudHypervisorAvailable() (bool, string) { return cloudhypervisor.Available() }

func (h realHost) kvmBootsGuest(ctx context.Context) (bool, string) {
	return cachedProbe(h.cache, h.kernel, func() (bool, string) { return h.q.ProbeKVM(ctx, h.kernel) })
}
