package image

import (
	"context"
	"fmt"

	"github.com/distribution/reference"
	"k8s.io/klog/v2"
)

// Pull fetches ref (a tag or digest reference; short names are normalized)
// for linux/amd64, unpacks its layers and records it. Concurrent pulls of the
// same reference with the same credentials share one download. If ctx ends
// first, Pull returns ctx.Err() but the download runs on, bounded by the
// store's PullTimeout, so a retry can join it.
func (s *Store) Pull(ctx context.Context, ref string, auth *Auth) (Image, error) {
	named, err := parseReference(ref)
	if err != nil {
		return Image{}, err
	}
	key := named.String() + "\x00" + auth.key()
	ch := s.pulls.DoChan(key, func() (any, error) {
		s.inflight.Add(1)
		defer s.inflight.Done()
		pctx, cancel := context.WithTimeout(s.life, s.cfg.pullTimeout())
		defer cancel()
		return s.pull(pctx, named, auth)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return Image{}, res.Err
		}
		return res.Val.(Image).clone(), nil
	case <-ctx.Done():
		return Image{}, fmt.Errorf("pull %s: %w", named, ctx.Err())
	}
}

func (s *Store) pull(ctx context.Context, named reference.Named, auth *Auth) (Image, error) {
	klog.InfoS("Pulling image", "image", named.String())
	desc, err := s.resolve(ctx, named, auth)
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", named, err)
	}
	img, err := desc.Image() // an index resolves to its linux/amd64 manifest
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", named, classifyRegistryError(err))
	}
	var refs []string
	if _, tagged := named.(reference.Tagged); tagged {
		refs = append(refs, named.String())
	}
	rd, err := repoDigest(named, desc.Digest.String())
	if err != nil {
		return Image{}, err
	}
	refs = append(refs, rd)
	out, err := s.commit(ctx, img, refs, true)
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", named, err)
	}
	klog.InfoS("Pulled image", "image", named.String(), "imageID", out.ID, "size", out.Size)
	return out, nil
}
