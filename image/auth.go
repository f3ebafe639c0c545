package image

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Auth holds registry credentials as CRI's AuthConfig carries them.
type Auth struct {
	Username string
	Password string
	// Auth is base64("username:password"); it overrides Username/Password.
	Auth          string
	IdentityToken string
	RegistryToken string
	// ServerAddress, when set, restricts the credentials to that registry
	// host, so they are not sent to a mirror or another registry.
	ServerAddress string
}

// authenticator returns the credentials to present to host.
func (a *Auth) authenticator(host string) (authn.Authenticator, error) {
	if a == nil {
		return authn.Anonymous, nil
	}
	if a.ServerAddress != "" && !sameRegistry(serverHost(a.ServerAddress), host) {
		return authn.Anonymous, nil
	}
	cfg := authn.AuthConfig{
		Username:      a.Username,
		Password:      a.Password,
		IdentityToken: a.IdentityToken,
		RegistryToken: a.RegistryToken,
	}
	if a.Auth != "" {
		user, pass, err := decodeBasic(a.Auth)
		if err != nil {
			return nil, err
		}
		cfg.Username, cfg.Password = user, pass
	}
	if cfg == (authn.AuthConfig{}) {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(cfg), nil
}

// key identifies the credentials, so that only pulls with equal credentials
// are coalesced: one caller's bad password must not fail another's pull.
func (a *Auth) key() string {
	if a == nil {
		return ""
	}
	h := sha256.New()
	for _, f := range []string{a.Username, a.Password, a.Auth, a.IdentityToken, a.RegistryToken, a.ServerAddress} {
		fmt.Fprintf(h, "%d:%s;", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func decodeBasic(enc string) (user, pass string, err error) {
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", "", fmt.Errorf("auth: %w: not base64", ErrInvalidArgument)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", fmt.Errorf("auth: %w: want user:password", ErrInvalidArgument)
	}
	return user, pass, nil
}

// serverHost extracts host[:port] from a ServerAddress, which kubelet may
// send as a bare host or as a URL ("https://index.docker.io/v1/").
func serverHost(addr string) string {
	if strings.Contains(addr, "://") {
		if u, err := url.Parse(addr); err == nil {
			return u.Host
		}
	}
	host, _, _ := strings.Cut(addr, "/")
	return host
}

func sameRegistry(a, b string) bool {
	return canonicalHost(a) == canonicalHost(b)
}

// canonicalHost folds Docker Hub's aliases into "docker.io".
func canonicalHost(h string) string {
	switch h {
	case "index.docker.io", "registry-1.docker.io":
		return "docker.io"
	}
	return h
}
