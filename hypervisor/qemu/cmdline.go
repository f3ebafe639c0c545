package qemu

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/podvisor/podvisor/hypervisor"
)

// AgentPortName names the virtio-serial port that carries the agent channel.
// The guest finds its device node through /sys/class/virtio-ports/*/name.
const AgentPortName = "io.podvisor.agent"

// QEMU object ids. Device, netdev and block-node ids live in separate QEMU
// namespaces; the prefixes keep caller-chosen IDs from colliding with the
// driver's own devices and tell RemoveDevice what a device is backed by.
const (
	devicePrefix   = "dev-"  // device_add id of a caller's disk or NIC
	netdevPrefix   = "net-"  // netdev id of a NIC
	blockPrefix    = "blk-"  // block node name (and add-fd opaque) of a disk
	tapFdPrefix    = "tap-"  // getfd name of a hot-plugged NIC's tap
	hotplugPortFmt = "hp%d"  // pcie-root-port ids, which are also their bus names
	serialBusID    = "vser0" // virtio-serial controller
	consoleFdset   = 0       // -add-fd set holding the console log
)

// inherited are the files the driver opens for QEMU; the command line
// refers to them by descriptor number.
type inherited struct {
	qmp, agent *os.File // listening sockets
	console    *os.File // nil: the serial console is discarded
}

// cmdline is a QEMU command line plus the files it names by fd number:
// files[i] becomes fd 3+i in QEMU (vmmproc.Spec.ExtraFiles).
type cmdline struct {
	args  []string
	files []*os.File
}

func (c *cmdline) add(args ...string) { c.args = append(c.args, args...) }

// pass hands f to QEMU and returns its descriptor number there.
func (c *cmdline) pass(f *os.File) int {
	c.files = append(c.files, f)
	return 2 + len(c.files)
}

// buildCmdline turns a validated Config into QEMU's arguments. It has no
// side effects, so validation errors and the command line itself can be
// tested without QEMU.
func buildCmdline(o *Options, cfg *hypervisor.Config, in inherited) *cmdline {
	c := &cmdline{}
	qmpFd, agentFd := c.pass(in.qmp), c.pass(in.agent) // always fds 3 and 4
	// -nodefaults: no default NIC, VGA, floppy, CD-ROM, serial or monitor;
	// -no-user-config: ignore /etc/qemu/*.conf; -no-reboot: a guest reboot
	// (also a panic with panic=-1) ends QEMU instead of looping.
	c.add("-name", "guest="+optValue(cfg.ID)+",debug-threads=on",
		"-msg", "timestamp=on",
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
		// Paused until Launch has the QMP connection up, so that no event
		// of the guest's life is missed.
		"-S")
	c.add("-machine", machineArg(o.Machine))
	if cfg.KVM {
		c.add("-accel", "kvm", "-cpu", "host")
	} else if cfg.VCPUs > 1 {
		c.add("-accel", "tcg,thread=multi", "-cpu", "max")
	} else {
		c.add("-accel", "tcg", "-cpu", "max")
	}
	mem := strconv.Itoa(cfg.MemoryMiB) + "M"
	// Guest RAM in a memfd: vhost-user backends (virtiofsd) must map it,
	// which needs share=on; without one, private pages are cheaper.
	share := "off"
	if cfg.SharedFS != nil {
		share = "on"
	}
	c.add("-smp", strconv.Itoa(cfg.VCPUs), "-m", mem,
		"-object", "memory-backend-memfd,id=mem,size="+mem+",share="+share)
	if o.Firmware != "" {
		c.add("-bios", o.Firmware)
	}
	// -kernel, -initrd and -append take their value verbatim: no option
	// parsing, so no comma escaping.
	c.add("-kernel", cfg.Kernel)
	if cfg.Initramfs != "" {
		c.add("-initrd", cfg.Initramfs)
	}
	if len(cfg.KernelArgs) > 0 {
		c.add("-append", strings.Join(cfg.KernelArgs, " "))
	}
	addConsole(c, in.console)
	c.add("-chardev", fmt.Sprintf("socket,id=qmp,fd=%d,server=on,wait=off", qmpFd),
		"-mon", "chardev=qmp,mode=control")
	c.add("-device", "virtio-serial-pci,id="+serialBusID,
		"-chardev", fmt.Sprintf("socket,id=agent,fd=%d,server=on,wait=off", agentFd),
		"-device", "virtserialport,bus="+serialBusID+".0,chardev=agent,name="+AgentPortName)
	c.add("-device", "virtio-rng-pci")
	// Free page reporting: the guest hands memory it frees back to the
	// host, so a VM's footprint falls again after a container's peak
	// instead of staying at its high-water mark. The balloon is never
	// inflated.
	c.add("-device", "virtio-balloon-pci,id=balloon0,free-page-reporting=on")
	if fs := cfg.SharedFS; fs != nil {
		c.add("-chardev", "socket,id=fs0,path="+optValue(fs.Socket),
			"-device", "vhost-user-fs-pci,chardev=fs0,tag="+optValue(fs.Tag))
	}
	for _, n := range cfg.NICs {
		c.add("-netdev", fmt.Sprintf("tap,id=%s%s,fd=%d", netdevPrefix, n.ID, c.pass(n.Tap)),
			"-device", nicDevice(n))
	}
	if o.Machine == MachineQ35 {
		// A PCIe root port takes one device; only devices behind one can
		// be hot-plugged on q35.
		for i := 1; i <= o.HotplugSlots; i++ {
			c.add("-device", fmt.Sprintf("pcie-root-port,id="+hotplugPortFmt+",bus=pcie.0,chassis=%d", i, i))
		}
	}
	return c
}

// machineArg trims legacy devices the guest would otherwise probe (under
// TCG every probe costs), and keeps guest RAM out of QEMU core dumps.
func machineArg(machine string) string {
	common := ",memory-backend=mem,dump-guest-core=off,smbus=off,i8042=off,vmport=off,smm=off"
	if machine == MachineQ35 {
		return machine + common + ",sata=off"
	}
	return machine + common
}

// addConsole wires the first serial port (ttyS0). The log file is opened by
// the driver and passed as an fd set, so QEMU needs no write access to the
// log's directory. Without a log the port still exists, so the guest sees
// the same hardware either way.
func addConsole(c *cmdline, console *os.File) {
	if console == nil {
		c.add("-chardev", "null,id=console")
	} else {
		c.add("-add-fd", fmt.Sprintf("fd=%d,set=%d,opaque=console", c.pass(console), consoleFdset),
			"-chardev", fmt.Sprintf("file,id=console,path=/dev/fdset/%d,append=on", consoleFdset))
	}
	c.add("-serial", "chardev:console")
}

// nicDevice is the -device value (also the device_add properties) of a NIC.
// romfile= skips the iPXE option ROM: the guest boots from -kernel.
func nicDevice(n hypervisor.NIC) string {
	s := fmt.Sprintf("virtio-net-pci,id=%s%s,netdev=%s%s,mac=%s,romfile=", devicePrefix, n.ID, netdevPrefix, n.ID, n.MAC)
	if n.MTU > 0 {
		s += ",host_mtu=" + strconv.Itoa(n.MTU)
	}
	return s
}

// optValue escapes a value for QEMU's comma-separated option syntax.
func optValue(s string) string { return strings.ReplaceAll(s, ",", ",,") }
