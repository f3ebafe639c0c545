package cloudhypervisor

import (
	"net"
	"path/filepath"
	"slices"
	"strings"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/cloudhypervisor/chapi"
)

// rngSource feeds the guest's virtio-rng.
const rngSource = "/dev/urandom"

// Queue geometry of the virtio-fs device; both fields are required by the
// API.
const (
	fsQueues    = 1
	fsQueueSize = 1024
)

// vmConfig is the body of vm.create. NICs are not part of it: vm.create drops
// fds, so they follow one by one through vm.add-net.
func vmConfig(cfg *hypervisor.Config, p vmPaths, opts *Options) chapi.VmConfig {
	vc := chapi.VmConfig{
		Payload: chapi.PayloadConfig{Kernel: ptr(cfg.Kernel)},
		Cpus: &chapi.CpusConfig{
			BootVcpus: cfg.VCPUs,
			MaxVcpus:  cfg.VCPUs,
			// The server defaults to exposing VMX/SVM; pods never run
			// their own VMs, and nested virtualization is attack surface.
			Nested: ptr(false),
		},
		Memory: &chapi.MemoryConfig{
			Size: int64(cfg.MemoryMiB) << 20,
			// vhost-user backends (virtiofsd) map guest memory, which
			// must then be shared.
			Shared: ptr(cfg.SharedFS != nil),
		},
		Vsock:   &chapi.VsockConfig{Cid: guestCID, Socket: p.vsock},
		Serial:  &chapi.SerialConfig{Mode: chapi.ConsoleModeOff},
		Console: &chapi.ConsoleConfig{Mode: chapi.ConsoleModeOff},
		Rng:     &chapi.RngConfig{Src: rngSource},
		// Free page reporting: the guest hands memory it frees back to
		// the host, so a VM's footprint falls again after a container's
		// peak. The balloon itself stays empty.
		Balloon: &chapi.BalloonConfig{Size: 0, FreePageReporting: ptr(true)},
	}
	if cfg.Initramfs != "" {
		vc.Payload.Initramfs = ptr(cfg.Initramfs)
	}
	if len(cfg.KernelArgs) > 0 {
		vc.Payload.Cmdline = ptr(strings.Join(cfg.KernelArgs, " "))
	}
	if cfg.ConsoleLog != "" {
		vc.Serial = &chapi.SerialConfig{Mode: chapi.ConsoleModeFile, File: ptr(cfg.ConsoleLog)}
	}
	if fs := cfg.SharedFS; fs != nil {
		vc.Fs = &[]chapi.FsConfig{{Tag: fs.Tag, Socket: fs.Socket, NumQueues: fsQueues, QueueSize: fsQueueSize}}
	}
	if !opts.DisableLandlock {
		rules := landlockRules(cfg, p, opts)
		vc.LandlockEnable = ptr(true)
		vc.LandlockRules = &rules
	}
	return vc
}

// Landlock access strings.
const (
	accessRead      = "r"
	accessWrite     = "w"
	accessReadWrite = "rw"
)

// landlockRules are the only paths the VMM may touch once the VM is created.
// Cloud Hypervisor adds the paths of its own configuration as well; listing
// them here keeps the sandbox correct if it stops doing so. The StateDir rule
// covers the API and vsock sockets (and the vsock_<port> sockets of
// guest-initiated connections).
func landlockRules(cfg *hypervisor.Config, p vmPaths, opts *Options) []chapi.LandlockConfig {
	var rules []chapi.LandlockConfig
	add := func(path, access string) {
		for i := range rules {
			if rules[i].Path == path {
				rules[i].Access = mergeAccess(rules[i].Access, access)
				return
			}
		}
		rules = append(rules, chapi.LandlockConfig{Path: path, Access: access})
	}
	add(cfg.Kernel, accessRead)
	if cfg.Initramfs != "" {
		add(cfg.Initramfs, accessRead)
	}
	add(p.stateDir, accessReadWrite)
	add(filepath.Dir(p.vsock), accessReadWrite)
	if cfg.SharedFS != nil {
		add(cfg.SharedFS.Socket, accessReadWrite)
	}
	if cfg.ConsoleLog != "" && !within(cfg.ConsoleLog, p.stateDir) {
		add(cfg.ConsoleLog, accessWrite)
	}
	add(rngSource, accessRead)
	for _, hp := range opts.HotplugPaths {
		add(hp, accessReadWrite)
	}
	return rules
}

func mergeAccess(a, b string) string {
	if a == b {
		return a
	}
	return accessReadWrite
}

// within reports whether path is root or below it (both clean and absolute).
func within(path, root string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// diskRoots are where hot-plugged disks may live when landlock is on.
func diskRoots(stateDir string, opts *Options) []string {
	return append([]string{stateDir}, opts.HotplugPaths...)
}

func netConfig(nic *hypervisor.NIC) chapi.NetConfig {
	// No mtu: with tap fds the VMM would set it on the tap (an ioctl that
	// needs CAP_NET_ADMIN) instead of only reading it. The tap's owner sets
	// the MTU; the VMM reads it and advertises it to the guest.
	return chapi.NetConfig{
		Id:  ptr(nic.ID),
		Mac: ptr(nic.MAC.String()),
	}
}

func diskConfig(d *hypervisor.Disk) chapi.DiskConfig {
	return chapi.DiskConfig{
		Id:       ptr(d.ID),
		Path:     ptr(d.Path),
		Readonly: ptr(d.ReadOnly),
		// Never let the VMM probe the format: a guest that writes a qcow2
		// header into a raw disk would otherwise have it reopened as qcow2
		// next time.
		ImageType: ptr(chapi.ImageTypeRaw),
	}
}

func validMAC(mac net.HardwareAddr) bool {
	return len(mac) == 6 && !slices.Equal(mac, make(net.HardwareAddr, 6)) && mac[0]&1 == 0
}

func ptr[T any](v T) *T { return &v }
