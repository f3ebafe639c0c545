package image

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// DefaultPullTimeout bounds one registry pull. Pulls are shared by concurrent
// callers and outlive the request that started them, so they need a bound of
// their own.
const DefaultPullTimeout = 30 * time.Minute

// Config is the image store's typed configuration.
type Config struct {
	// Mirrors maps a registry host as it appears in normalized references
	// ("docker.io", "registry.k8s.io", "10.0.0.5:5000") to endpoints tried in
	// order before the registry itself, the repository path preserved — like
	// containerd's hosts.toml. An insecure registry is listed as its own
	// mirror with PlainHTTP or SkipVerify, and in NoUpstream.
	Mirrors map[string][]Endpoint `toml:"mirrors"`
	// NoUpstream lists registry hosts pulled only through their mirrors.
	NoUpstream []string `toml:"no_upstream"`
	// PullTimeout bounds one pull; zero means DefaultPullTimeout.
	PullTimeout time.Duration `toml:"pull_timeout"`
}

// Endpoint is one registry mirror.
type Endpoint struct {
	// URL is host[:port], optionally prefixed by http:// or https://; no path.
	URL string `toml:"url"`
	// PlainHTTP speaks HTTP without TLS (implied by an http:// URL).
	PlainHTTP bool `toml:"plain_http"`
	// SkipVerify accepts any TLS certificate.
	SkipVerify bool `toml:"skip_verify"`
}

// DefaultConfig returns a configuration without mirrors.
func DefaultConfig() Config {
	return Config{PullTimeout: DefaultPullTimeout}
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	for reg, eps := range c.Mirrors {
		if err := validateHost(reg); err != nil {
			return fmt.Errorf("mirrors[%q]: %w", reg, err)
		}
		if len(eps) == 0 {
			return fmt.Errorf("mirrors[%q]: %w: no endpoints", reg, ErrInvalidArgument)
		}
		for i, ep := range eps {
			if _, _, err := ep.parse(); err != nil {
				return fmt.Errorf("mirrors[%q][%d]: %w", reg, i, err)
			}
		}
	}
	for _, reg := range c.NoUpstream {
		if len(c.Mirrors[reg]) == 0 {
			return fmt.Errorf("no_upstream %q: %w: registry has no mirrors", reg, ErrInvalidArgument)
		}
	}
	if c.PullTimeout < 0 {
		return fmt.Errorf("pull_timeout %s: %w: negative", c.PullTimeout, ErrInvalidArgument)
	}
	return nil
}

func (c Config) pullTimeout() time.Duration {
	if c.PullTimeout == 0 {
		return DefaultPullTimeout
	}
	return c.PullTimeout
}

func (c Config) noUpstream(reg string) bool {
	for _, r := range c.NoUpstream {
		if r == reg {
			return true
		}
	}
	return false
}

// parse returns the endpoint's host[:port] and whether it speaks plain HTTP.
func (e Endpoint) parse() (host string, plainHTTP bool, err error) {
	raw := e.URL
	plainHTTP = e.PlainHTTP
	if strings.Contains(raw, "://") {
		u, perr := url.Parse(raw)
		if perr != nil {
			return "", false, fmt.Errorf("url %q: %w: %w", raw, ErrInvalidArgument, perr)
		}
		switch u.Scheme {
		case "http":
			plainHTTP = true
		case "https":
			if e.PlainHTTP {
				return "", false, fmt.Errorf("url %q: %w: https with plain_http", raw, ErrInvalidArgument)
			}
		default:
			return "", false, fmt.Errorf("url %q: %w: scheme must be http or https", raw, ErrInvalidArgument)
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return "", false, fmt.Errorf("url %q: %w: only scheme and host[:port] are allowed", raw, ErrInvalidArgument)
		}
		raw = u.Host
	}
	if err := validateHost(raw); err != nil {
		return "", false, fmt.Errorf("url %q: %w", e.URL, err)
	}
	if plainHTTP && e.SkipVerify {
		return "", false, fmt.Errorf("url %q: %w: skip_verify without TLS", e.URL, ErrInvalidArgument)
	}
	return raw, plainHTTP, nil
}

func validateHost(h string) error {
	if h == "" {
		return fmt.Errorf("%w: empty host", ErrInvalidArgument)
	}
	u, err := url.Parse("//" + h)
	if err != nil || u.Host != h || u.Path != "" {
		return fmt.Errorf("%w: %q is not host[:port]", ErrInvalidArgument, h)
	}
	return nil
}
