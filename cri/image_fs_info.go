package cri

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageFsInfo reports the image store's filesystem usage. Container
// writable layers live on the same filesystem (under --root).
func (i *imageService) ImageFsInfo(ctx context.Context, _ *runtime.ImageFsInfoRequest) (*runtime.ImageFsInfoResponse, error) {
	u, err := i.s.b.Images.FsInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("image fs info: %w", err)
	}
	fs := &runtime.FilesystemUsage{
		Timestamp:  u.Timestamp.UnixNano(),
		FsId:       &runtime.FilesystemIdentifier{Mountpoint: u.Mountpoint},
		UsedBytes:  &runtime.UInt64Value{Value: u.UsedBytes},
		InodesUsed: &runtime.UInt64Value{Value: u.InodesUsed},
	}
	return &runtime.ImageFsInfoResponse{ImageFilesystems: []*runtime.FilesystemUsage{fs}}, nil
}
