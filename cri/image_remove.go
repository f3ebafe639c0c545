package cri

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// RemoveImage removes an image and all its tags. Removing an unknown image
// succeeds.
func (i *imageService) RemoveImage(ctx context.Context, r *runtime.RemoveImageRequest) (*runtime.RemoveImageResponse, error) {
	ref := r.GetImage().GetImage()
	if ref == "" {
		return nil, invalid("image.image", "is empty")
	}
	if err := i.s.b.Images.Remove(ctx, ref); err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("remove image %q: %w", ref, err)
	}
	klog.InfoS("Image removed", "image", ref)
	return &runtime.RemoveImageResponse{}, nil
}
