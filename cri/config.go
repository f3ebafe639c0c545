package cri

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Config is the CRI service's configuration, one TOML section per area.
// Sections owned by other packages (podvm, image, network, streaming) are
// defined here and mapped onto those packages' configs by cmd/podvisor.
type Config struct {
	Sandbox   SandboxConfig   `toml:"sandbox" comment:"Pod sandbox (VM) sizing."`
	PodVM     PodVMConfig     `toml:"podvm" comment:"Pod VM boot."`
	Registry  RegistryConfig  `toml:"registry" comment:"Image registries."`
	CNI       CNIConfig       `toml:"cni" comment:"Pod networking (CNI)."`
	Stream    StreamConfig    `toml:"stream" comment:"Streaming server for exec, attach and port-forward."`
	RateLimit RateLimitConfig `toml:"rate_limit" comment:"Token bucket for CRI requests; over the limit a request fails with ResourceExhausted."`
	NRI       NRIConfig       `toml:"nri" comment:"Node Resource Interface: plugins that watch and adjust pods and containers."`
}

// SandboxConfig sizes pod VMs.
type SandboxConfig struct {
	DefaultVCPUs     int `toml:"default_vcpus" comment:"vCPUs of a pod VM whose pod sets no CPU limit."`
	DefaultMemoryMiB int `toml:"default_memory_mib" comment:"Memory (MiB) of a pod VM whose pod sets no memory limit."`
	MaxVCPUs         int `toml:"max_vcpus" comment:"Upper bound of a pod VM's vCPUs."`
	MaxMemoryMiB     int `toml:"max_memory_mib" comment:"Upper bound of a pod VM's memory (MiB)."`
	// OverheadMiB is added to the pod's memory limit for the guest kernel and agent.
	OverheadMiB int `toml:"overhead_memory_mib" comment:"Memory (MiB) added to the pod's limit for the guest kernel and agent."`
}

// PodVMConfig configures pod VM boot.
type PodVMConfig struct {
	GuestDir    string   `toml:"guest_dir" comment:"Directory with the guest image: vmlinuz, initramfs.img, manifest.json."`
	Driver      string   `toml:"driver" comment:"VMM driver: auto, qemu or cloud-hypervisor."`
	BootTimeout Duration `toml:"boot_timeout" comment:"Bound on booting a pod VM up to its agent session."`
	StopTimeout Duration `toml:"stop_timeout" comment:"Time a guest gets to power off before its VMM is killed."`
	Virtiofsd   string   `toml:"virtiofsd" comment:"virtiofsd binary."`
	VMMUser     string   `toml:"vmm_user" comment:"Unprivileged account VMM processes run as (\"\" keeps root)."`
}

// RegistryConfig configures image pulls.
type RegistryConfig struct {
	Mirrors     map[string]Mirror `toml:"mirrors" comment:"Mirrors per registry host, tried in order before the registry itself, e.g.\n[registry.mirrors.\"docker.io\"]\nendpoints = [{ url = \"http://127.0.0.1:5000\", plain_http = true }]"`
	PullTimeout Duration          `toml:"pull_timeout" comment:"Bound on one image pull."`
}

// Mirror lists a registry's mirror endpoints.
type Mirror struct {
	Endpoints []Endpoint `toml:"endpoints"`
}

// Endpoint is one registry endpoint.
type Endpoint struct {
	URL       string `toml:"url"`
	PlainHTTP bool   `toml:"plain_http"`
}

// CNIConfig configures pod networking.
type CNIConfig struct {
	ConfDir string   `toml:"conf_dir" comment:"CNI network configuration directory; the first file by name is used."`
	BinDirs []string `toml:"bin_dirs" comment:"CNI plugin directories, searched in order."`
}

// StreamConfig configures the streaming server.
type StreamConfig struct {
	Address     string   `toml:"address" comment:"Address the streaming server listens on."`
	Port        string   `toml:"port" comment:"Port of the streaming server (\"0\" picks a free one)."`
	TLS         bool     `toml:"tls" comment:"Serve streams over TLS with a self-signed certificate."`
	IdleTimeout Duration `toml:"idle_timeout" comment:"Idle stream connections are closed after this."`
}

// RateLimitConfig bounds the CRI request rate.
type RateLimitConfig struct {
	RequestsPerSecond float64 `toml:"requests_per_second" comment:"Sustained requests per second (0 disables the limit)."`
	Burst             int     `toml:"burst" comment:"Requests allowed at once above the sustained rate."`
}

// NRIConfig configures NRI (github.com/containerd/nri). Plugins are trusted
// host components: they see every pod and may change containers, so the
// socket is root-only and NRI is off unless an administrator enables it.
type NRIConfig struct {
	Enable     bool   `toml:"enable" comment:"Relay pod and container lifecycle events to NRI plugins."`
	SocketPath string `toml:"socket_path" comment:"Unix socket external plugins connect to (created mode 0600)."`
	// PluginPath and PluginConfigPath are empty by default: no plugin is
	// launched by podvisor unless an administrator names a directory.
	PluginPath          string   `toml:"plugin_path" comment:"Directory of plugins podvisor launches at start (\"\" launches none)."`
	PluginConfigPath    string   `toml:"plugin_config_path" comment:"Directory of the launched plugins' configuration files."`
	DisableConnections  bool     `toml:"disable_connections" comment:"Accept no external plugin connections (only launched plugins)."`
	RegistrationTimeout Duration `toml:"plugin_registration_timeout" comment:"Time a plugin gets to register after connecting."`
	RequestTimeout      Duration `toml:"plugin_request_timeout" comment:"Time a plugin gets to handle one event; a plugin that overruns is disconnected."`
}

// Duration is a time.Duration written as "10s" in TOML.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// DefaultConfig returns the configuration used where the file says nothing.
func DefaultConfig() Config {
	return Config{
		Sandbox: SandboxConfig{DefaultVCPUs: 1, DefaultMemoryMiB: 512, MaxVCPUs: 16, MaxMemoryMiB: 65536, OverheadMiB: 128},
		PodVM: PodVMConfig{
			GuestDir:    "/usr/lib/podvisor/guest",
			Driver:      "auto",
			BootTimeout: Duration(2 * time.Minute),
			StopTimeout: Duration(10 * time.Second),
			Virtiofsd:   "/usr/lib/qemu/virtiofsd",
			VMMUser:     "podvisor-vmm",
		},
		Registry:  RegistryConfig{Mirrors: map[string]Mirror{}, PullTimeout: Duration(10 * time.Minute)},
		CNI:       CNIConfig{ConfDir: "/etc/cni/net.d", BinDirs: []string{"/opt/cni/bin"}},
		Stream:    StreamConfig{Address: "127.0.0.1", Port: "0", IdleTimeout: Duration(4 * time.Hour)},
		RateLimit: RateLimitConfig{RequestsPerSecond: 200, Burst: 400},
		NRI: NRIConfig{
			SocketPath:          "/var/run/nri/nri.sock",
			RegistrationTimeout: Duration(5 * time.Second),
			RequestTimeout:      Duration(2 * time.Second),
		},
	}
}

// Validate checks c before anything is started.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("config %s: "+format, append([]any{field}, a...)...))
	}
	s := c.Sandbox
	if s.MaxVCPUs < 1 || s.MaxVCPUs > 64 {
		bad("sandbox.max_vcpus", "%d out of range 1-64", s.MaxVCPUs)
	}
	if s.DefaultVCPUs < 1 || s.DefaultVCPUs > s.MaxVCPUs {
		bad("sandbox.default_vcpus", "%d out of range 1-max_vcpus", s.DefaultVCPUs)
	}
	if s.MaxMemoryMiB < 128 || s.MaxMemoryMiB > 256*1024 {
		bad("sandbox.max_memory_mib", "%d out of range 128-262144", s.MaxMemoryMiB)
	}
	if s.DefaultMemoryMiB < 128 || s.DefaultMemoryMiB > s.MaxMemoryMiB {
		bad("sandbox.default_memory_mib", "%d out of range 128-max_memory_mib", s.DefaultMemoryMiB)
	}
	if s.OverheadMiB < 0 || s.OverheadMiB > 4096 {
		bad("sandbox.overhead_memory_mib", "%d out of range 0-4096", s.OverheadMiB)
	}
	if !filepath.IsAbs(c.PodVM.GuestDir) {
		bad("podvm.guest_dir", "%q is not an absolute path", c.PodVM.GuestDir)
	}
	switch c.PodVM.Driver {
	case "auto", "qemu", "cloud-hypervisor":
	default:
		bad("podvm.driver", "%q is not auto, qemu or cloud-hypervisor", c.PodVM.Driver)
	}
	if c.PodVM.BootTimeout <= 0 {
		bad("podvm.boot_timeout", "must be positive")
	}
	if c.PodVM.StopTimeout <= 0 {
		bad("podvm.stop_timeout", "must be positive")
	}
	if !filepath.IsAbs(c.PodVM.Virtiofsd) {
		bad("podvm.virtiofsd", "%q is not an absolute path", c.PodVM.Virtiofsd)
	}
	for host, m := range c.Registry.Mirrors {
		if host == "" || strings.ContainsAny(host, "/ ") {
			bad("registry.mirrors", "host %q is not a registry host", host)
		}
		for i, ep := range m.Endpoints {
			u, err := url.Parse(ep.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(fmt.Sprintf("registry.mirrors.%q.endpoints[%d].url", host, i), "%q is not an http(s) URL", ep.URL)
			}
		}
	}
	if c.Registry.PullTimeout <= 0 {
		bad("registry.pull_timeout", "must be positive")
	}
	if !filepath.IsAbs(c.CNI.ConfDir) {
		bad("cni.conf_dir", "%q is not an absolute path", c.CNI.ConfDir)
	}
	if len(c.CNI.BinDirs) == 0 {
		bad("cni.bin_dirs", "is empty")
	}
	for i, d := range c.CNI.BinDirs {
		if !filepath.IsAbs(d) {
			bad(fmt.Sprintf("cni.bin_dirs[%d]", i), "%q is not an absolute path", d)
		}
	}
	if net.ParseIP(c.Stream.Address) == nil {
		bad("stream.address", "%q is not an IP address", c.Stream.Address)
	}
	if _, err := net.LookupPort("tcp", c.Stream.Port); err != nil {
		bad("stream.port", "%q is not a port", c.Stream.Port)
	}
	if c.RateLimit.RequestsPerSecond < 0 {
		bad("rate_limit.requests_per_second", "must not be negative")
	}
	if c.RateLimit.RequestsPerSecond > 0 && c.RateLimit.Burst < 1 {
		bad("rate_limit.burst", "must be at least 1 when the rate limit is on")
	}
	if n := c.NRI; n.Enable {
		if !n.DisableConnections && !filepath.IsAbs(n.SocketPath) {
			bad("nri.socket_path", "%q is not an absolute path", n.SocketPath)
		}
		if n.PluginPath != "" && !filepath.IsAbs(n.PluginPath) {
			bad("nri.plugin_path", "%q is not an absolute path", n.PluginPath)
		}
		if n.PluginConfigPath != "" && !filepath.IsAbs(n.PluginConfigPath) {
			bad("nri.plugin_config_path", "%q is not an absolute path", n.PluginConfigPath)
		}
		if n.RegistrationTimeout <= 0 {
			bad("nri.plugin_registration_timeout", "must be positive")
		}
		if n.RequestTimeout <= 0 {
			bad("nri.plugin_request_timeout", "must be positive")
		}
	}
	return errors.Join(errs...)
}
