package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"k8s.io/klog/v2"
)

// Annotations naming an image in an OCI layout's index.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// Import loads the images of a `docker save` archive or an OCI image layout
// tarball, tagging them as the archive says.
func (s *Store) Import(ctx context.Context, r io.Reader) ([]Image, error) {
	spool, err := os.CreateTemp(s.tmpDir(), "import-")
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	// Both readers need random access to the archive.
	if _, err := io.Copy(spool, r); err != nil {
		return nil, fmt.Errorf("import: spool archive: %w", err)
	}
	names, err := archiveNames(spool.Name())
	if err != nil {
		return nil, err
	}
	switch {
	case names["manifest.json"]:
		return s.importDocker(ctx, spool.Name())
	case names["index.json"]:
		return s.importOCI(ctx, spool.Name())
	default:
		return nil, fmt.Errorf("import: %w: neither a docker archive nor an OCI layout", ErrInvalidArgument)
	}
}

func archiveNames(p string) (map[string]bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	out := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("import: %w: %w", ErrInvalidArgument, err)
		}
		out[strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")] = true
	}
}

func (s *Store) importDocker(ctx context.Context, archive string) ([]Image, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(archive) }
	manifest, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("import: %w: %w", ErrInvalidArgument, err)
	}
	var out []Image
	for _, d := range manifest {
		var tag *name.Tag
		if len(d.RepoTags) > 0 {
			t, err := name.NewTag(d.RepoTags[0])
			if err != nil {
				return out, fmt.Errorf("import: %w: %w", ErrInvalidReference, err)
			}
			tag = &t
		} else if len(manifest) > 1 {
			return out, fmt.Errorf("import: %w: untagged image in a multi-image archive", ErrInvalidArgument)
		}
		var refs []string
		for _, t := range d.RepoTags {
			named, err := parseReference(t)
			if err != nil {
				return out, err
			}
			refs = append(refs, named.String())
		}
		img, err := tarball.Image(opener, tag)
		if err != nil {
			return out, fmt.Errorf("import: %w: %w", ErrInvalidArgument, err)
		}
		imported, err := s.commit(ctx, img, refs, false)
		if err != nil {
			return out, fmt.Errorf("import %v: %w", d.RepoTags, err)
		}
		klog.InfoS("Imported image", "imageID", imported.ID, "tags", imported.RepoTags)
		out = append(out, imported)
	}
	return out, nil
}

func (s *Store) importOCI(ctx context.Context, archive string) ([]Image, error) {
	dir, err := os.MkdirTemp(s.tmpDir(), "layout-")
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := extractLayout(archive, dir); err != nil {
		return nil, err
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("import: %w: %w", ErrInvalidArgument, err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("import: %w: %w", ErrInvalidArgument, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("import: %w: %w", ErrInvalidArgument, err)
	}
	var out []Image
	for _, desc := range im.Manifests {
		img, err := platformImage(idx, desc)
		if err != nil {
			return out, err
		}
		refs, err := layoutRefs(desc)
		if err != nil {
			return out, err
		}
		imported, err := s.commit(ctx, img, refs, true)
		if err != nil {
			return out, fmt.Errorf("import %s: %w", desc.Digest, err)
		}
		klog.InfoS("Imported image", "imageID", imported.ID, "tags", imported.RepoTags)
		out = append(out, imported)
	}
	return out, nil
}

// platformImage returns desc's image, or its linux/amd64 image if desc is an index.
func platformImage(idx v1.ImageIndex, desc v1.Descriptor) (v1.Image, error) {
	if desc.MediaType.IsImage() {
		return idx.Image(desc.Digest)
	}
	if !desc.MediaType.IsIndex() {
		return nil, fmt.Errorf("import %s: %w: media type %s", desc.Digest, ErrInvalidArgument, desc.MediaType)
	}
	child, err := idx.ImageIndex(desc.Digest)
	if err != nil {
		return nil, err
	}
	cm, err := child.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, m := range cm.Manifests {
		if m.MediaType.IsImage() && m.Platform != nil && m.Platform.Satisfies(platform) {
			return child.Image(m.Digest)
		}
	}
	return nil, fmt.Errorf("import %s: %w: no linux/amd64 image", desc.Digest, ErrNotFound)
}

// layoutRefs names an OCI layout entry like containerd's import does: the
// full name annotation, else a ref.name that is a full reference.
func layoutRefs(desc v1.Descriptor) ([]string, error) {
	n := desc.Annotations[annotationContainerdName]
	if n == "" {
		if rn := desc.Annotations[annotationRefName]; strings.ContainsAny(rn, "/:@") {
			n = rn
		}
	}
	if n == "" {
		return nil, nil
	}
	named, err := parseReference(n)
	if err != nil {
		return nil, err
	}
	var refs []string
	if _, ok := named.(reference.Tagged); ok {
		refs = append(refs, named.String())
	}
	rd, err := repoDigest(named, desc.Digest.String())
	if err != nil {
		return nil, err
	}
	return append(refs, rd), nil
}

// extractLayout writes the layout's files (oci-layout, index.json,
// blobs/<alg>/<hex>) into dir, ignoring anything else.
func extractLayout(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer root.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("import: %w: %w", ErrInvalidArgument, err)
		}
		p, err := cleanName(hdr.Name)
		if err != nil || hdr.Typeflag != tar.TypeReg || !layoutFile(p) {
			continue
		}
		if err := root.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return fmt.Errorf("import: %w", err)
		}
		w, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		_, err = io.Copy(w, tr)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
	}
}

func layoutFile(p string) bool {
	if p == "oci-layout" || p == "index.json" {
		return true
	}
	parts := strings.Split(p, "/")
	return len(parts) == 3 && parts[0] == "blobs" && parts[1] != "" && isLowerHex(parts[2])
}
