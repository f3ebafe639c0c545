package cri

import (
	"context"
	"errors"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
)

func TestImageService(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	is := e.s.ImageService()
	if _, err := is.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("empty ref: %v", err)
	}
	p, err := is.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "nginx"}})
	if err != nil || p.ImageRef == "" {
		t.Fatalf("pull: %v %v", p, err)
	}
	st, err := is.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: "busybox"}, Verbose: true})
	if err != nil || st.Image.Uid.GetValue() != 1000 || st.Image.Size != 1000 || st.Info["info"] == "" {
		t.Fatalf("status %+v %v", st, err)
	}
	if st, err := is.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: "missing"}}); err != nil || st.Image != nil {
		t.Fatalf("missing image: %+v %v", st, err)
	}
	l, _ := is.ListImages(ctx, &runtime.ListImagesRequest{})
	if len(l.Images) != 2 {
		t.Fatalf("%d images", len(l.Images))
	}
	l, _ = is.ListImages(ctx, &runtime.ListImagesRequest{Filter: &runtime.ImageFilter{Image: &runtime.ImageSpec{Image: "nginx"}}})
	if len(l.Images) != 1 || l.Images[0].Id != p.ImageRef {
		t.Fatalf("filtered: %+v", l.Images)
	}
	for range 2 {
		if _, err := is.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: "nginx"}}); err != nil {
			t.Fatalf("remove: %v", err)
		}
	}
	fs, err := is.ImageFsInfo(ctx, &runtime.ImageFsInfoRequest{})
	if err != nil || fs.ImageFilesystems[0].UsedBytes.Value != 42 {
		t.Fatalf("fs info %+v %v", fs, err)
	}
	e.images.PullFn = func(string) error { return context.DeadlineExceeded }
	if _, err := is.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "slow"}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("pull timeout: %v", err)
	}
}

func TestImageUser(t *testing.T) {
	for _, tc := range []struct {
		in   string
		uid  int64
		has  bool
		name string
	}{{"", 0, false, ""}, {"0", 0, true, ""}, {"1000:10", 1000, true, ""}, {"www:www", 0, false, "www"}} {
		uid, name := imageUser(tc.in)
		if (uid != nil) != tc.has || (uid != nil && *uid != tc.uid) || name != tc.name {
			t.Errorf("imageUser(%q) = %v %q", tc.in, uid, name)
		}
	}
}
