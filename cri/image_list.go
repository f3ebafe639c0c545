package cri

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListImages lists images, optionally only the one the filter names.
func (i *imageService) ListImages(ctx context.Context, r *runtime.ListImagesRequest) (*runtime.ListImagesResponse, error) {
	if ref := r.GetFilter().GetImage().GetImage(); ref != "" {
		img, err := i.s.b.Images.Get(ctx, ref)
		if err != nil {
			if isNotFound(err) {
				return &runtime.ListImagesResponse{}, nil
			}
			return nil, fmt.Errorf("list images: %w", err)
		}
		return &runtime.ListImagesResponse{Images: []*runtime.Image{criImage(img)}}, nil
	}
	imgs, err := i.s.b.Images.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	resp := &runtime.ListImagesResponse{}
	for _, img := range imgs {
		resp.Images = append(resp.Images, criImage(img))
	}
	return resp, nil
}

func criImage(img Image) *runtime.Image {
	out := &runtime.Image{
		Id: img.ID, RepoTags: img.RepoTags, RepoDigests: img.RepoDigests, Size: img.Size, Pinned: img.Pinned,
		Spec: &runtime.ImageSpec{Image: img.ID},
	}
	uid, name := imageUser(img.Config.User)
	if uid != nil {
		out.Uid = &runtime.Int64Value{Value: *uid}
	}
	out.Username = name
	return out
}
