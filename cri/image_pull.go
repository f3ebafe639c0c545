package cri

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// PullImage pulls an image and returns its ID.
func (i *imageService) PullImage(ctx context.Context, r *runtime.PullImageRequest) (*runtime.PullImageResponse, error) {
	ref := r.GetImage().GetImage()
	if ref == "" {
		return nil, invalid("image.image", "is empty")
	}
	var auth *RegistryAuth
	if a := r.Auth; a != nil {
		auth = &RegistryAuth{Username: a.Username, Password: a.Password, Auth: a.Auth, ServerAddress: a.ServerAddress,
			IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
	}
	ctx, cancel := context.WithTimeout(ctx, i.s.cfg.Registry.PullTimeout.Std())
	defer cancel()
	img, err := i.s.b.Images.Pull(ctx, ref, auth)
	if err != nil {
		return nil, fmt.Errorf("pull image %q: %w", ref, err)
	}
	klog.InfoS("Image pulled", "image", ref, "imageID", img.ID)
	return &runtime.PullImageResponse{ImageRef: img.ID}, nil
}
