package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestImportDockerArchive(t *testing.T) {
	a, b := simpleImage(t, "docker-a"), simpleImage(t, "docker-b")
	var buf bytes.Buffer
	refs := map[name.Reference]v1.Image{
		name.MustParseReference("busybox:1"):              a,
		name.MustParseReference("example.com/team/app:2"): b,
	}
	if err := tarball.MultiRefWrite(refs, &buf); err != nil {
		t.Fatal(err)
	}
	s, _ := newTestStore(t, DefaultConfig())
	imgs, err := s.Import(bg(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 {
		t.Fatalf("imported %d images", len(imgs))
	}
	for ref, want := range map[string]v1.Image{"busybox:1": a, "docker.io/library/busybox:1": a, "example.com/team/app:2": b} {
		got, err := s.Get(bg(), ref)
		if err != nil || got.ID != imageID(t, want) {
			t.Errorf("Get(%s) = %s, %v", ref, got.ID, err)
			continue
		}
		dirs, err := s.LayerDirs(got)
		if err != nil || len(dirs) != 1 {
			t.Errorf("LayerDirs(%s) = %v, %v", ref, dirs, err)
		}
	}
}

func TestImportOCILayout(t *testing.T) {
	img := simpleImage(t, "oci")
	dir := t.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{annotationRefName: "registry.example/oci:3"})); err != nil {
		t.Fatal(err)
	}
	digest, _ := img.Digest()
	s, _ := newTestStore(t, DefaultConfig())
	imgs, err := s.Import(bg(), tarDir(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].ID != imageID(t, img) {
		t.Fatalf("imported %+v", imgs)
	}
	if !slices.Equal(imgs[0].RepoTags, []string{"registry.example/oci:3"}) || !slices.Equal(imgs[0].RepoDigests, []string{"registry.example/oci@" + digest.String()}) {
		t.Errorf("refs = %v %v", imgs[0].RepoTags, imgs[0].RepoDigests)
	}
	if _, err := s.LayerDirs(imgs[0]); err != nil {
		t.Error(err)
	}
}

func TestImportRejectsOther(t *testing.T) {
	s, _ := newTestStore(t, DefaultConfig())
	data := tarBytes(t, []tarEntry{{name: "hello", body: "x"}})
	if _, err := s.Import(bg(), bytes.NewReader(data)); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Import = %v, want ErrInvalidArgument", err)
	}
	if _, err := s.Import(bg(), strings.NewReader("not a tar at all, long enough to fail the header")); err == nil {
		t.Error("Import of garbage succeeded")
	}
}

func tarDir(t *testing.T, dir string) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return &buf
}
