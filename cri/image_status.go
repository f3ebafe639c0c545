package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
)

// ImageStatus reports an image; an unknown image is a nil image, not an
// error.
func (i *imageService) ImageStatus(ctx context.Context, r *runtime.ImageStatusRequest) (*runtime.ImageStatusResponse, error) {
	ref := r.GetImage().GetImage()
	if ref == "" {
		return nil, invalid("image.image", "is empty")
	}
	img, err := i.s.b.Images.Get(ctx, ref)
	if isNotFound(err) {
		return &runtime.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("image status %q: %w", ref, err)
	}
	resp := &runtime.ImageStatusResponse{Image: criImage(img)}
	if r.Verbose {
		info, _ := json.Marshal(map[string]any{"config": img.Config})
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

func isNotFound(err error) bool { return errdefs.IsNotFound(err) }

// imageUser splits an image's USER as CRI reports it: a numeric user part
// is a uid, anything else a name; the group part is ignored.
func imageUser(user string) (*int64, string) {
	u, _, _ := strings.Cut(user, ":")
	if u == "" {
		return nil, ""
	}
	if n, err := strconv.ParseInt(u, 10, 64); err == nil {
		return &n, ""
	}
	return nil, u
}
