package qemu

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/podvisor/podvisor/hypervisor"
)

// values returns the value after every occurrence of flag.
func values(args []string, flag string) []string {
	var v []string
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			v = append(v, args[i+1])
		}
	}
	return v
}

func devNull(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func testConfig(t *testing.T) hypervisor.Config {
	t.Helper()
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	initrd := filepath.Join(dir, "initrd")
	for _, p := range []string{kernel, initrd} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	return hypervisor.Config{
		ID: "vm1", StateDir: state, Kernel: kernel, Initramfs: initrd,
		KernelArgs: []string{"console=ttyS0", "quiet"}, VCPUs: 1, MemoryMiB: 256,
	}
}

func TestBuildCmdline(t *testing.T) {
	tapA, tapB, console := devNull(t), devNull(t), devNull(t)
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	tests := []struct {
		name   string
		opts   Options
		modify func(*hypervisor.Config)
		in     inherited
		check  func(t *testing.T, c *cmdline)
	}{{
		name: "TCG one vCPU, no shared fs, console discarded",
		check: func(t *testing.T, c *cmdline) {
			wantValues(t, c.args, "-accel", "tcg")
			wantValues(t, c.args, "-cpu", "max")
			wantValues(t, c.args, "-smp", "1")
			wantValues(t, c.args, "-m", "256M")
			wantValues(t, c.args, "-object", "memory-backend-memfd,id=mem,size=256M,share=off")
			wantValues(t, c.args, "-machine", "q35,memory-backend=mem,dump-guest-core=off,smbus=off,i8042=off,vmport=off,smm=off,sata=off")
			wantValues(t, c.args, "-append", "console=ttyS0 quiet")
			wantValues(t, c.args, "-serial", "chardev:console")
			if !slices.Contains(values(c.args, "-chardev"), "null,id=console") {
				t.Errorf("console not discarded: %q", values(c.args, "-chardev"))
			}
			if len(values(c.args, "-add-fd")) != 0 {
				t.Errorf("unexpected -add-fd without console log")
			}
			for _, flag := range []string{"-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-S"} {
				if !slices.Contains(c.args, flag) {
					t.Errorf("missing %s", flag)
				}
			}
			wantValues(t, c.args, "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny")
			if n := countPrefix(values(c.args, "-device"), "pcie-root-port,"); n != 4 {
				t.Errorf("got %d root ports, want 4", n)
			}
			if countPrefix(values(c.args, "-device"), "vhost-user-fs-pci") != 0 {
				t.Errorf("unexpected vhost-user-fs device")
			}
			if !slices.Contains(values(c.args, "-device"), "virtio-balloon-pci,id=balloon0,free-page-reporting=on") {
				t.Errorf("no free-page-reporting balloon: %q", values(c.args, "-device"))
			}
			if len(c.files) != 2 {
				t.Errorf("got %d inherited files, want 2", len(c.files))
			}
		},
	}, {
		name:   "TCG several vCPUs runs one thread per vCPU",
		modify: func(c *hypervisor.Config) { c.VCPUs = 2 },
		check: func(t *testing.T, c *cmdline) {
			wantValues(t, c.args, "-accel", "tcg,thread=multi")
			wantValues(t, c.args, "-smp", "2")
		},
	}, {
		name:   "KVM",
		modify: func(c *hypervisor.Config) { c.KVM = true; c.VCPUs = 2 },
		check: func(t *testing.T, c *cmdline) {
			wantValues(t, c.args, "-accel", "kvm")
			wantValues(t, c.args, "-cpu", "host")
		},
	}, {
		name: "shared fs shares guest memory and escapes commas",
		modify: func(c *hypervisor.Config) {
			c.SharedFS = &hypervisor.SharedFS{Tag: "pod", Socket: "/run/a,b/fs.sock"}
		},
		check: func(t *testing.T, c *cmdline) {
			wantValues(t, c.args, "-object", "memory-backend-memfd,id=mem,size=256M,share=on")
			if !slices.Contains(values(c.args, "-chardev"), "socket,id=fs0,path=/run/a,,b/fs.sock") {
				t.Errorf("vhost-user chardev missing or unescaped: %q", values(c.args, "-chardev"))
			}
			if !slices.Contains(values(c.args, "-device"), "vhost-user-fs-pci,chardev=fs0,tag=pod") {
				t.Errorf("vhost-user-fs device missing: %q", values(c.args, "-device"))
			}
		},
	}, {
		name: "sockets, console and taps map to their fd numbers",
		in:   inherited{console: console},
		modify: func(c *hypervisor.Config) {
			c.NICs = []hypervisor.NIC{
				{ID: "eth0", MAC: mac, MTU: 1450, Tap: tapA},
				{ID: "eth1", MAC: mac, Tap: tapB},
			}
		},
		check: func(t *testing.T, c *cmdline) {
			chardevs := values(c.args, "-chardev")
			for _, want := range []string{
				"socket,id=qmp,fd=3,server=on,wait=off",
				"socket,id=agent,fd=4,server=on,wait=off",
				"file,id=console,path=/dev/fdset/0,append=on",
			} {
				if !slices.Contains(chardevs, want) {
					t.Errorf("missing -chardev %s in %q", want, chardevs)
				}
			}
			wantValues(t, c.args, "-add-fd", "fd=5,set=0,opaque=console")
			wantValues(t, c.args, "-netdev", "tap,id=net-eth0,fd=6", "tap,id=net-eth1,fd=7")
			devs := values(c.args, "-device")
			for _, want := range []string{
				"virtio-net-pci,id=dev-eth0,netdev=net-eth0,mac=02:00:00:00:00:01,romfile=,host_mtu=1450",
				"virtio-net-pci,id=dev-eth1,netdev=net-eth1,mac=02:00:00:00:00:01,romfile=",
				"virtserialport,bus=vser0.0,chardev=agent,name=" + AgentPortName,
			} {
				if !slices.Contains(devs, want) {
					t.Errorf("missing -device %s in %q", want, devs)
				}
			}
			if len(c.files) != 5 || c.files[2] != console || c.files[3] != tapA || c.files[4] != tapB {
				t.Errorf("inherited files in the wrong order: %v", c.files)
			}
		},
	}, {
		name:   "pc hot-plugs on its root bus: no root ports",
		opts:   Options{Machine: MachinePC, Firmware: "/usr/share/qemu/qboot.rom"},
		modify: func(c *hypervisor.Config) { c.Initramfs = ""; c.KernelArgs = nil },
		check: func(t *testing.T, c *cmdline) {
			wantValues(t, c.args, "-machine", "pc,memory-backend=mem,dump-guest-core=off,smbus=off,i8042=off,vmport=off,smm=off")
			wantValues(t, c.args, "-bios", "/usr/share/qemu/qboot.rom")
			if countPrefix(values(c.args, "-device"), "pcie-root-port") != 0 {
				t.Errorf("root ports on pc")
			}
			if len(values(c.args, "-initrd")) != 0 || len(values(c.args, "-append")) != 0 {
				t.Errorf("unexpected -initrd or -append")
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			if tt.modify != nil {
				tt.modify(&cfg)
			}
			if err := validate(&cfg); err != nil {
				t.Fatalf("validate: %v", err)
			}
			in := tt.in
			in.qmp, in.agent = devNull(t), devNull(t)
			opts := tt.opts.withDefaults()
			c := buildCmdline(&opts, &cfg, in)
			if c.files[0] != in.qmp || c.files[1] != in.agent {
				t.Errorf("QMP and agent sockets must be fds 3 and 4")
			}
			tt.check(t, c)
		})
	}
}

func wantValues(t *testing.T, args []string, flag string, want ...string) {
	t.Helper()
	if got := values(args, flag); !slices.Equal(got, want) {
		t.Errorf("%s: got %q, want %q", flag, got, want)
	}
}

func countPrefix(vals []string, prefix string) int {
	n := 0
	for _, v := range vals {
		if strings.HasPrefix(v, prefix) {
			n++
		}
	}
	return n
}

func TestValidate(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	tap := devNull(t)
	tests := []struct {
		name   string
		modify func(*hypervisor.Config)
	}{
		{"no ID", func(c *hypervisor.Config) { c.ID = "" }},
		{"relative kernel", func(c *hypervisor.Config) { c.Kernel = "vmlinuz" }},
		{"missing kernel", func(c *hypervisor.Config) { c.Kernel = "/nonexistent/vmlinuz" }},
		{"kernel is a directory", func(c *hypervisor.Config) { c.Kernel = "/" }},
		{"missing initramfs", func(c *hypervisor.Config) { c.Initramfs = "/nonexistent/initrd" }},
		{"relative console log", func(c *hypervisor.Config) { c.ConsoleLog = "console.log" }},
		{"state dir too long for a socket", func(c *hypervisor.Config) { c.StateDir = "/" + strings.Repeat("x", 100) }},
		{"kernel argument with a space", func(c *hypervisor.Config) { c.KernelArgs = []string{"a b"} }},
		{"zero vCPUs", func(c *hypervisor.Config) { c.VCPUs = 0 }},
		{"too little memory", func(c *hypervisor.Config) { c.MemoryMiB = 16 }},
		{"shared fs tag too long", func(c *hypervisor.Config) {
			c.SharedFS = &hypervisor.SharedFS{Tag: strings.Repeat("t", 37), Socket: "/run/fs.sock"}
		}},
		{"shared fs relative socket", func(c *hypervisor.Config) {
			c.SharedFS = &hypervisor.SharedFS{Tag: "t", Socket: "fs.sock"}
		}},
		{"NIC ID with a comma", func(c *hypervisor.Config) {
			c.NICs = []hypervisor.NIC{{ID: "a,b", MAC: mac, Tap: tap}}
		}},
		{"NIC with a multicast MAC", func(c *hypervisor.Config) {
			c.NICs = []hypervisor.NIC{{ID: "a", MAC: net.HardwareAddr{1, 0, 0, 0, 0, 1}, Tap: tap}}
		}},
		{"NIC MTU too small", func(c *hypervisor.Config) {
			c.NICs = []hypervisor.NIC{{ID: "a", MAC: mac, MTU: 20, Tap: tap}}
		}},
		{"duplicate NIC IDs", func(c *hypervisor.Config) {
			c.NICs = []hypervisor.NIC{{ID: "a", MAC: mac, Tap: tap}, {ID: "a", MAC: mac, Tap: tap}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			tt.modify(&cfg)
			if err := validate(&cfg); !errors.Is(err, hypervisor.ErrInvalidConfig) {
				t.Fatalf("validate = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// TestLaunchInvalidHasNoSideEffects checks that validation runs before
// anything is created: no QEMU is needed because none may be started.
func TestLaunchInvalidHasNoSideEffects(t *testing.T) {
	tests := []struct {
		name   string
		opts   Options
		modify func(*hypervisor.Config)
	}{
		{"bad config", Options{Binary: "/nonexistent/qemu"}, func(c *hypervisor.Config) { c.VCPUs = 0 }},
		{"bad options", Options{Binary: "/nonexistent/qemu", Machine: "microvm"}, nil},
		{"relative firmware", Options{Binary: "/nonexistent/qemu", Firmware: "qboot.rom"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.ConsoleLog = filepath.Join(cfg.StateDir, "console.log")
			if tt.modify != nil {
				tt.modify(&cfg)
			}
			_, err := New(tt.opts).Launch(context.Background(), cfg)
			if !errors.Is(err, hypervisor.ErrInvalidConfig) {
				t.Fatalf("Launch = %v, want ErrInvalidConfig", err)
			}
			if ents, _ := os.ReadDir(cfg.StateDir); len(ents) != 0 {
				t.Errorf("StateDir not empty after a rejected Launch: %v", ents)
			}
		})
	}
}

// TestLaunchMissingBinaryCleansUp fails after the sockets and logs were
// created: every one of them must be gone again.
func TestLaunchMissingBinaryCleansUp(t *testing.T) {
	cfg := testConfig(t)
	cfg.ConsoleLog = filepath.Join(cfg.StateDir, "console.log")
	_, err := New(Options{Binary: "/nonexistent/qemu-system-x86_64"}).Launch(context.Background(), cfg)
	if err == nil {
		t.Fatal("Launch succeeded without a QEMU binary")
	}
	if ents, _ := os.ReadDir(cfg.StateDir); len(ents) != 0 {
		t.Errorf("StateDir not empty after a failed Launch: %v", ents)
	}
}

func TestReattachRejectsForeignState(t *testing.T) {
	_, err := New(Options{}).Reattach(context.Background(), hypervisor.State{Driver: "cloud-hypervisor", ID: "x", PID: 1, StateDir: "/x"})
	if !errors.Is(err, hypervisor.ErrInvalidConfig) {
		t.Fatalf("Reattach = %v, want ErrInvalidConfig", err)
	}
}
