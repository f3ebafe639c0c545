package network

import (
	"errors"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		ok     bool
	}{
		{"default", func(*Config) {}, true},
		{"relative state dir", func(c *Config) { c.StateDir = "var/lib" }, false},
		{"unclean conf dir", func(c *Config) { c.ConfDir = "/etc/cni/../cni/net.d" }, false},
		{"empty cache dir", func(c *Config) { c.CacheDir = "" }, false},
		{"no bin dirs", func(c *Config) { c.BinDirs = nil }, false},
		{"relative bin dir", func(c *Config) { c.BinDirs = []string{"/opt/cni/bin", "bin"} }, false},
		{"two bin dirs", func(c *Config) { c.BinDirs = []string{"/opt/cni/bin", "/usr/lib/cni"} }, true},
		{"long if name", func(c *Config) { c.IfName = "eth0123456789012" }, false},
		{"if name with slash", func(c *Config) { c.IfName = "eth/0" }, false},
		{"if name dotdot", func(c *Config) { c.IfName = ".." }, false},
		{"empty if name", func(c *Config) { c.IfName = "" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(&c)
			err := c.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("error %v is not ErrInvalidArgument", err)
			}
		})
	}
}
