package image

import (
	"fmt"

	"github.com/distribution/reference"
)

// parseReference normalizes ref the way kubelet and containerd do:
// "busybox" → "docker.io/library/busybox:latest"; "name:tag@digest" keeps
// only the digest.
func parseReference(ref string) (reference.Named, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w: %w", ref, ErrInvalidReference, err)
	}
	return named, nil
}

// repoDigest is the "name@sha256:…" reference of a manifest in a repository.
func repoDigest(named reference.Named, manifestDigest string) (string, error) {
	d, err := reference.WithDigest(reference.TrimNamed(named), digestOf(manifestDigest))
	if err != nil {
		return "", fmt.Errorf("repo digest of %s: %w: %w", named, ErrInvalidReference, err)
	}
	return d.String(), nil
}
