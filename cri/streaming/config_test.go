package streaming

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	tests := []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"fixed port", func(c *Config) { c.Address = "127.0.0.1:10010" }, true},
		{"ipv6", func(c *Config) { c.Address = "[::1]:0" }, true},
		{"node ip", func(c *Config) { c.Address = "10.0.0.5:0" }, true},
		{"tls with files", func(c *Config) { c.EnableTLS, c.TLSCertFile, c.TLSKeyFile = true, "/c", "/k" }, true},
		{"tls self-signed", func(c *Config) { c.EnableTLS = true }, true},
		{"no port", func(c *Config) { c.Address = "127.0.0.1" }, false},
		{"empty", func(c *Config) { c.Address = "" }, false},
		{"all interfaces", func(c *Config) { c.Address = "0.0.0.0:0" }, false},
		{"no host", func(c *Config) { c.Address = ":10010" }, false},
		{"host name", func(c *Config) { c.Address = "localhost:0" }, false},
		{"bad port", func(c *Config) { c.Address = "127.0.0.1:65536" }, false},
		{"cert without key", func(c *Config) { c.EnableTLS, c.TLSCertFile = true, "/c" }, false},
		{"cert without tls", func(c *Config) { c.TLSCertFile, c.TLSKeyFile = "/c", "/k" }, false},
		{"zero idle timeout", func(c *Config) { c.StreamIdleTimeout = 0 }, false},
		{"negative creation timeout", func(c *Config) { c.StreamCreationTimeout = -1 }, false},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		tt.edit(&c)
		err := c.Validate()
		if tt.ok && err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", tt.name, err)
		}
	}
	if _, err := New(DefaultConfig(), nil); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New without backend: %v", err)
	}
}

func TestErrorKinds(t *testing.T) {
	s, err := New(DefaultConfig(), &fakeBackend{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: "p"})
	if errdefs.Code(err) != codes.Unavailable {
		t.Fatalf("not serving: %v is %v, want Unavailable", err, errdefs.Code(err))
	}
}
