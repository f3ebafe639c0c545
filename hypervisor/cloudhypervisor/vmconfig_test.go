package cloudhypervisor

import (
	"net"
	"os"
	"slices"
	"testing"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/cloudhypervisor/chapi"
)

func TestLandlockRules(t *testing.T) {
	base := func() hypervisor.Config {
		return hypervisor.Config{
			StateDir: "/run/pv/vm1",
			Kernel:   "/guest/vmlinux",
		}
	}
	tests := []struct {
		name   string
		cfg    func() hypervisor.Config
		opts   Options
		want   []chapi.LandlockConfig
		noRule bool // landlock disabled
	}{
		{
			name: "minimal",
			cfg:  base,
			want: []chapi.LandlockConfig{
				{Path: "/guest/vmlinux", Access: "r"},
				{Path: "/run/pv/vm1", Access: "rw"},
				{Path: "/dev/urandom", Access: "r"},
			},
		},
		{
			name: "everything",
			cfg: func() hypervisor.Config {
				c := base()
				c.Initramfs = "/guest/initrd"
				c.SharedFS = &hypervisor.SharedFS{Tag: "t", Socket: "/run/pv/fs/vm1.sock"}
				c.ConsoleLog = "/var/log/pv/vm1.console"
				return c
			},
			opts: Options{HotplugPaths: []string{"/var/lib/pv/disks"}},
			want: []chapi.LandlockConfig{
				{Path: "/guest/vmlinux", Access: "r"},
				{Path: "/guest/initrd", Access: "r"},
				{Path: "/run/pv/vm1", Access: "rw"},
				{Path: "/run/pv/fs/vm1.sock", Access: "rw"},
				{Path: "/var/log/pv/vm1.console", Access: "w"},
				{Path: "/dev/urandom", Access: "r"},
				{Path: "/var/lib/pv/disks", Access: "rw"},
			},
		},
		{
			name: "console log inside StateDir needs no rule of its own",
			cfg: func() hypervisor.Config {
				c := base()
				c.ConsoleLog = "/run/pv/vm1/console.log"
				return c
			},
			want: []chapi.LandlockConfig{
				{Path: "/guest/vmlinux", Access: "r"},
				{Path: "/run/pv/vm1", Access: "rw"},
				{Path: "/dev/urandom", Access: "r"},
			},
		},
		{
			name: "kernel inside a hotplug path merges access",
			cfg:  base,
			opts: Options{HotplugPaths: []string{"/guest/vmlinux"}},
			want: []chapi.LandlockConfig{
				{Path: "/guest/vmlinux", Access: "rw"},
				{Path: "/run/pv/vm1", Access: "rw"},
				{Path: "/dev/urandom", Access: "r"},
			},
		},
		{name: "disabled", cfg: base, opts: Options{DisableLandlock: true}, noRule: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg()
			vc := vmConfig(&cfg, pathsFor(cfg.StateDir), &tt.opts)
			if tt.noRule {
				if vc.LandlockEnable != nil || vc.LandlockRules != nil {
					t.Fatalf("landlock configured although disabled")
				}
				return
			}
			if vc.LandlockEnable == nil || !*vc.LandlockEnable {
				t.Fatal("landlock not enabled")
			}
			if !slices.Equal(*vc.LandlockRules, tt.want) {
				t.Errorf("rules = %+v\nwant    %+v", *vc.LandlockRules, tt.want)
			}
		})
	}
}

func TestVMConfigWithoutSharedFS(t *testing.T) {
	cfg := hypervisor.Config{StateDir: "/s", Kernel: "/k", VCPUs: 1, MemoryMiB: 64}
	vc := vmConfig(&cfg, pathsFor(cfg.StateDir), &Options{})
	if *vc.Memory.Shared || vc.Fs != nil || vc.Payload.Initramfs != nil || vc.Payload.Cmdline != nil {
		t.Errorf("unexpected fields: memory.shared=%v fs=%v initramfs=%v cmdline=%v",
			*vc.Memory.Shared, vc.Fs, vc.Payload.Initramfs, vc.Payload.Cmdline)
	}
	if vc.Serial.Mode != chapi.ConsoleModeOff {
		t.Errorf("serial = %s without a console log, want Off", vc.Serial.Mode)
	}
}

func TestDiskConfig(t *testing.T) {
	dc := diskConfig(&hypervisor.Disk{ID: "d", Path: "/s/d.img", ReadOnly: true})
	if *dc.ImageType != chapi.ImageTypeRaw || !*dc.Readonly || *dc.Id != "d" {
		t.Errorf("diskConfig = %+v", dc)
	}
}

func TestAddDeviceValidation(t *testing.T) {
	vm := &VM{id: "v", diskRoots: []string{"/run/pv/vm1", "/var/lib/pv/disks"}}
	pipeR, pipeW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pipeR.Close()
	defer pipeW.Close()
	tests := []struct {
		name string
		dev  hypervisor.Device
	}{
		{"nothing", hypervisor.Device{}},
		{"both", hypervisor.Device{Disk: &hypervisor.Disk{ID: "d", Path: "/run/pv/vm1/d"}, NIC: &hypervisor.NIC{}}},
		{"disk outside landlock roots", hypervisor.Device{Disk: &hypervisor.Disk{ID: "d", Path: "/etc/shadow"}}},
		{"disk escaping with ..", hypervisor.Device{Disk: &hypervisor.Disk{ID: "d", Path: "/run/pv/vm1/../vm2/d"}}},
		{"relative disk", hypervisor.Device{Disk: &hypervisor.Disk{ID: "d", Path: "d.img"}}},
		{"disk without ID", hypervisor.Device{Disk: &hypervisor.Disk{Path: "/run/pv/vm1/d"}}},
		{"NIC without tap", hypervisor.Device{NIC: &hypervisor.NIC{ID: "n", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}}}},
		{"NIC with zero MAC", hypervisor.Device{NIC: &hypervisor.NIC{ID: "n", MAC: make(net.HardwareAddr, 6), Tap: pipeW}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The VM has no VMM behind it: validation must fail first.
			if err := vm.AddDevice(t.Context(), tt.dev); !isInvalid(err) {
				t.Fatalf("AddDevice = %v, want ErrInvalidConfig", err)
			}
		})
	}
	for _, ok := range []string{"/run/pv/vm1/d.img", "/var/lib/pv/disks/a/b.img"} {
		if err := vm.checkDisk(&hypervisor.Disk{ID: "d", Path: ok}); err != nil {
			t.Errorf("checkDisk(%s) = %v", ok, err)
		}
	}
}

func TestOptions(t *testing.T) {
	if _, err := New(Options{Seccomp: "maybe"}); !isInvalid(err) {
		t.Errorf("New with a bad seccomp mode = %v", err)
	}
	if _, err := New(Options{HotplugPaths: []string{"rel"}}); !isInvalid(err) {
		t.Errorf("New with a relative hotplug path = %v", err)
	}
	d, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.opts.Binary != "cloud-hypervisor" || d.opts.Seccomp != SeccompOn || d.opts.DisableLandlock {
		t.Errorf("defaults = %+v", d.opts)
	}
	if d.Name() != "cloud-hypervisor" {
		t.Errorf("Name() = %q", d.Name())
	}
}

func TestAvailable(t *testing.T) {
	ok, reason := Available()
	if !ok && reason == "" {
		t.Error("not available, with no reason")
	}
	t.Logf("Available() = %v, %q", ok, reason)
}
