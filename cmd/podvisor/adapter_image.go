package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/podvisor/podvisor/cri"
	"github.com/podvisor/podvisor/cri/errdefs"
	"github.com/podvisor/podvisor/image"
)

// imageAdapter serves cri.ImageStore from the image store.
type imageAdapter struct{ s *image.Store }

var _ cri.ImageStore = imageAdapter{}

func newImageAdapter(root string, cfg cri.Config) (imageAdapter, error) {
	icfg := image.DefaultConfig()
	icfg.Mirrors = map[string][]image.Endpoint{}
	for host, m := range cfg.Registry.Mirrors {
		for _, ep := range m.Endpoints {
			icfg.Mirrors[host] = append(icfg.Mirrors[host], image.Endpoint{URL: ep.URL, PlainHTTP: ep.PlainHTTP})
		}
	}
	if d := cfg.Registry.PullTimeout.Std(); d > 0 {
		icfg.PullTimeout = d
	}
	if err := icfg.Validate(); err != nil {
		return imageAdapter{}, err
	}
	s, err := image.Open(root, icfg)
	if err != nil {
		return imageAdapter{}, err
	}
	return imageAdapter{s}, nil
}

// imageErr maps the image store's error kinds to CRI's.
func imageErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, image.ErrNotFound):
		return fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	case errors.Is(err, image.ErrInvalidReference), errors.Is(err, image.ErrInvalidArgument):
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	case errors.Is(err, image.ErrInUse), errors.Is(err, image.ErrUnauthorized):
		return fmt.Errorf("%w: %w", errdefs.ErrFailedPrecondition, err)
	}
	return err
}

func toCRIImage(i image.Image) cri.Image {
	return cri.Image{
		ID: i.ID, RepoTags: i.RepoTags, RepoDigests: i.RepoDigests, Size: i.Size, Pinned: i.Pinned,
		Config: cri.ImageConfig{
			User: i.Config.User, Entrypoint: i.Config.Entrypoint, Cmd: i.Config.Cmd, Env: i.Config.Env,
			WorkingDir: i.Config.WorkingDir, StopSignal: i.Config.StopSignal, Volumes: i.Config.Volumes,
			Labels: i.Config.Labels,
		},
	}
}

func (a imageAdapter) Pull(ctx context.Context, ref string, auth *cri.RegistryAuth) (cri.Image, error) {
	var ia *image.Auth
	if auth != nil {
		ia = &image.Auth{Username: auth.Username, Password: auth.Password, Auth: auth.Auth,
			ServerAddress: auth.ServerAddress, IdentityToken: auth.IdentityToken, RegistryToken: auth.RegistryToken}
	}
	img, err := a.s.Pull(ctx, ref, ia)
	return toCRIImage(img), imageErr(err)
}

func (a imageAdapter) Get(ctx context.Context, refOrID string) (cri.Image, error) {
	img, err := a.s.Get(ctx, refOrID)
	return toCRIImage(img), imageErr(err)
}

func (a imageAdapter) List(ctx context.Context) ([]cri.Image, error) {
	imgs, err := a.s.List(ctx)
	if err != nil {
		return nil, imageErr(err)
	}
	out := make([]cri.Image, len(imgs))
	for i, img := range imgs {
		out[i] = toCRIImage(img)
	}
	return out, nil
}

func (a imageAdapter) Remove(ctx context.Context, refOrID string) error {
	return imageErr(a.s.Remove(ctx, refOrID))
}

func (a imageAdapter) FsInfo(ctx context.Context) (cri.FsUsage, error) {
	u, err := a.s.FsInfo(ctx)
	return cri.FsUsage{Mountpoint: u.Mountpoint, UsedBytes: u.UsedBytes, InodesUsed: u.InodesUsed, Timestamp: u.Timestamp}, imageErr(err)
}

// LayerDirs returns the layers base first, as cri expects; the store lists
// them top first.
func (a imageAdapter) LayerDirs(ctx context.Context, img cri.Image) ([]string, error) {
	full, err := a.s.Get(ctx, img.ID)
	if err != nil {
		return nil, imageErr(err)
	}
	dirs, err := a.s.LayerDirs(full)
	if err != nil {
		return nil, imageErr(err)
	}
	out := make([]string, len(dirs))
	for i, d := range dirs {
		out[len(dirs)-1-i] = d
	}
	return out, nil
}

func (a imageAdapter) ResolveUser(ctx context.Context, img cri.Image, user string) (uint32, uint32, []uint32, error) {
	full, err := a.s.Get(ctx, img.ID)
	if err != nil {
		return 0, 0, nil, imageErr(err)
	}
	uid, gid, groups, err := a.s.ResolveUser(full, user)
	return uid, gid, groups, imageErr(err)
}
