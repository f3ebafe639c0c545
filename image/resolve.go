package image

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"k8s.io/klog/v2"
)

// platform is the guest's: every pod VM is linux/amd64.
var platform = v1.Platform{OS: "linux", Architecture: "amd64"}

// endpoint is one place a registry's content can be fetched from.
type endpoint struct {
	host      string
	plainHTTP bool
	transport http.RoundTripper
}

// endpoints lists where to look for domain's content, in order: its mirrors,
// then the registry itself unless configured otherwise.
func (s *Store) endpoints(domain string) []endpoint {
	var out []endpoint
	for _, ep := range s.cfg.Mirrors[domain] {
		host, plain, _ := ep.parse() // validated at Open
		t := s.transport[ep.URL]
		if t == nil {
			t = remote.DefaultTransport
		}
		out = append(out, endpoint{host: host, plainHTTP: plain, transport: t})
	}
	if !s.cfg.noUpstream(domain) {
		out = append(out, endpoint{host: domain, transport: remote.DefaultTransport})
	}
	return out
}

// resolve fetches ref's manifest (or index) descriptor from the first
// endpoint that has it. Layers are later read from that same endpoint.
func (s *Store) resolve(ctx context.Context, named reference.Named, auth *Auth) (*remote.Descriptor, error) {
	var errs []string
	var answers []error
	var last error
	for _, ep := range s.endpoints(reference.Domain(named)) {
		desc, err := s.resolveAt(ctx, ep, named, auth)
		if err == nil {
			return desc, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		klog.V(2).InfoS("Registry endpoint failed", "image", named.String(), "endpoint", ep.host, "err", err)
		errs = append(errs, fmt.Sprintf("%s: %v", ep.host, err))
		answers = append(answers, err)
		last = err
	}
	if last == nil {
		return nil, fmt.Errorf("%w: no endpoint for %s", ErrNotFound, named)
	}
	return nil, fmt.Errorf("%w (tried %s)", mostTelling(answers, last), strings.Join(errs, "; "))
}

// mostTelling picks the error that says most about the image when every
// endpoint failed: a registry that answered "unauthorized" or "not found"
// says more than one that could not be reached, so a mirror's "not found"
// is not hidden behind an unreachable upstream.
func mostTelling(errs []error, last error) error {
	for _, kind := range []error{ErrUnauthorized, ErrNotFound} {
		for _, err := range errs {
			if errors.Is(err, kind) {
				return err
			}
		}
	}
	return last
}

func (s *Store) resolveAt(ctx context.Context, ep endpoint, named reference.Named, auth *Auth) (*remote.Descriptor, error) {
	ref, err := ggcrReference(ep, named)
	if err != nil {
		return nil, err
	}
	authn, err := auth.authenticator(ep.host)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Get(ref,
		remote.WithContext(ctx),
		remote.WithAuth(authn),
		remote.WithTransport(ep.transport),
		remote.WithPlatform(platform),
		remote.WithUserAgent("podvisor"),
	)
	if err != nil {
		return nil, classifyRegistryError(err)
	}
	return desc, nil
}

// ggcrReference re-homes named onto the endpoint's host, keeping its path.
func ggcrReference(ep endpoint, named reference.Named) (name.Reference, error) {
	var opts []name.Option
	if ep.plainHTTP {
		opts = append(opts, name.Insecure)
	}
	repo, err := name.NewRepository(ep.host+"/"+reference.Path(named), opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidReference, err)
	}
	if c, ok := named.(reference.Canonical); ok {
		return repo.Digest(c.Digest().String()), nil
	}
	if t, ok := named.(reference.Tagged); ok {
		return repo.Tag(t.Tag()), nil
	}
	return repo.Tag("latest"), nil
}

// classifyRegistryError attaches this package's error kinds to registry errors.
func classifyRegistryError(err error) error {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return err
	}
	switch terr.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	case http.StatusNotFound:
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	for _, d := range terr.Errors {
		switch d.Code {
		case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
			return fmt.Errorf("%w: %w", ErrUnauthorized, err)
		case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode:
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		}
	}
	return err
}
