package qemu

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/hypervisor/vmmproc"
)

// probeTimeout bounds a KVM probe. A working KVM prints the kernel banner
// within a second; a broken nested one hangs after the firmware.
const probeTimeout = 10 * time.Second

// kernelBanner is the first line a Linux kernel prints.
const kernelBanner = "Linux version"

// ProbeKVM reports whether /dev/kvm can really boot a guest: /dev/kvm may
// exist and open yet be unable to run one (a nested paravirtual KVM hangs
// right after the firmware). It boots kernel under KVM, without initramfs
// or devices, and answers true only if the kernel's banner reaches the
// serial console within probeTimeout; the probe VM is always killed. It
// runs as the caller (root), takes up to probeTimeout and is meant to be run
// once and cached.
func (d *Driver) ProbeKVM(ctx context.Context, kernel string) (usable bool, reason string) {
	usable, reason = d.probeKVM(ctx, kernel)
	klog.InfoS("KVM probe", "usable", usable, "reason", reason)
	return usable, reason
}

func (d *Driver) probeKVM(ctx context.Context, kernel string) (bool, string) {
	kvm, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false, err.Error()
	}
	kvm.Close()
	if err := checkReadable("kernel", kernel); err != nil {
		return false, err.Error()
	}
	r, w, err := os.Pipe()
	if err != nil {
		return false, err.Error()
	}
	defer r.Close()
	args := []string{
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
		"-machine", d.opts.Machine, "-accel", "kvm", "-cpu", "host", "-smp", "1", "-m", "128",
		"-kernel", kernel, "-append", "console=ttyS0 earlyprintk=ttyS0 panic=-1",
		"-serial", "stdio",
	}
	if d.opts.Firmware != "" {
		args = append(args, "-bios", d.opts.Firmware)
	}
	proc, err := vmmproc.Start(vmmproc.Spec{Path: d.opts.Binary, Args: args, Log: w})
	w.Close()
	if err != nil {
		return false, err.Error()
	}
	defer proc.Kill()

	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	found := make(chan string, 1)
	go scanForBanner(r, found)
	select {
	case last := <-found:
		if strings.Contains(last, kernelBanner) {
			return true, "the guest kernel booted under KVM"
		}
		return false, fmt.Sprintf("QEMU exited before the kernel banner: %s", last)
	case <-ctx.Done():
		return false, fmt.Sprintf("no kernel banner on the serial console within %s under KVM", probeTimeout)
	}
}

// scanForBanner sends the banner line when it appears, or else the last
// line QEMU wrote (its error) once its output ends.
func scanForBanner(r *os.File, found chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	last := ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.Contains(line, kernelBanner) {
			found <- line
			return
		}
		if line != "" {
			last = line
		}
	}
	found <- last
}
