package streaming

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// Defaults, as containerd's CRI plugin has them.
const (
	// DefaultAddress listens on the loopback only, on a port picked at
	// start: kubelet on the same node fetches the returned URLs and
	// proxies them to the API server.
	DefaultAddress = "127.0.0.1:0"
	// DefaultStreamIdleTimeout closes a stream connection that moved no
	// data for this long.
	DefaultStreamIdleTimeout = 4 * time.Hour
	// DefaultStreamCreationTimeout bounds how long a client may take to
	// open its streams after connecting.
	DefaultStreamCreationTimeout = remotecommand.DefaultStreamCreationTimeout
)

// ErrInvalidConfig is the kind of every error Config.Validate returns.
var ErrInvalidConfig = errors.New("invalid streaming server config")

// Config is the streaming server's configuration.
type Config struct {
	// Address is the IP:port to listen on; port 0 picks a free port.
	Address string `toml:"address"`
	// EnableTLS serves https. The server is plain http by default, like
	// containerd's: the URLs carry single-use tokens and the default
	// address is the loopback.
	EnableTLS bool `toml:"enable_tls"`
	// TLSCertFile and TLSKeyFile hold the server's certificate and key in
	// PEM. With EnableTLS and neither set, a self-signed certificate is
	// generated at start (kubelet does not verify it).
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
	// StreamIdleTimeout closes a connection that moved no data for this
	// long.
	StreamIdleTimeout time.Duration `toml:"stream_idle_timeout"`
	// StreamCreationTimeout bounds how long a client may take to open its
	// streams.
	StreamCreationTimeout time.Duration `toml:"stream_creation_timeout"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Address:               DefaultAddress,
		StreamIdleTimeout:     DefaultStreamIdleTimeout,
		StreamCreationTimeout: DefaultStreamCreationTimeout,
	}
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	host, port, err := net.SplitHostPort(c.Address)
	if err != nil {
		return fmt.Errorf("%w: address %q: %w", ErrInvalidConfig, c.Address, err)
	}
	// The URLs handed to kubelet name the listening address, so it must
	// be one address a client can reach: not a name that may resolve to
	// several, not the unspecified address.
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		return fmt.Errorf("%w: address %q: host must be a specific IP address", ErrInvalidConfig, c.Address)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%w: address %q: port must be 0 to 65535", ErrInvalidConfig, c.Address)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return fmt.Errorf("%w: tls_cert_file and tls_key_file go together", ErrInvalidConfig)
	}
	if c.TLSCertFile != "" && !c.EnableTLS {
		return fmt.Errorf("%w: tls_cert_file is set but enable_tls is not", ErrInvalidConfig)
	}
	if c.StreamIdleTimeout <= 0 {
		return fmt.Errorf("%w: stream_idle_timeout %s must be positive", ErrInvalidConfig, c.StreamIdleTimeout)
	}
	if c.StreamCreationTimeout <= 0 {
		return fmt.Errorf("%w: stream_creation_timeout %s must be positive", ErrInvalidConfig, c.StreamCreationTimeout)
	}
	return nil
}
