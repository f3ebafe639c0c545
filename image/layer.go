package image

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"k8s.io/klog/v2"
)

// ensureLayer makes sure the layer with diffID is unpacked. Images sharing a
// layer share its directory, and concurrent pulls unpack it once.
func (s *Store) ensureLayer(ctx context.Context, l v1.Layer, diffID string, verifyCompressed bool) error {
	if exists(s.layerPath(diffID)) {
		return nil
	}
	_, err, _ := s.layers.Do(diffID, func() (any, error) {
		if exists(s.layerPath(diffID)) {
			return nil, nil
		}
		return nil, s.unpackLayer(ctx, l, diffID, verifyCompressed)
	})
	return err
}

// unpackLayer unpacks into a staging directory and renames it into place only
// once both digests check out, so a failed or hostile layer leaves nothing.
func (s *Store) unpackLayer(ctx context.Context, l v1.Layer, diffID string, verifyCompressed bool) (retErr error) {
	tmp, err := os.MkdirTemp(s.tmpDir(), "layer-")
	if err != nil {
		return fmt.Errorf("layer %s: %w", diffID, err)
	}
	defer func() {
		if retErr != nil {
			if err := os.RemoveAll(tmp); err != nil {
				klog.ErrorS(err, "Failed to remove staging layer", "dir", tmp)
			}
		}
	}()
	rc, err := layerReader(l, verifyCompressed)
	if err != nil {
		return fmt.Errorf("layer %s: %w", diffID, err)
	}
	defer rc.Close()
	want := digestOf(diffID)
	h := want.Algorithm().Hash()
	if h == nil {
		return fmt.Errorf("layer %s: %w: unsupported digest", diffID, ErrInvalidLayer)
	}
	tee := io.TeeReader(rc, h)
	if err := s.unpacker.unpack(ctx, tmp, tee); err != nil {
		return fmt.Errorf("unpack layer %s: %w", diffID, err)
	}
	// Read to the end: tar stops before its padding and the compressed
	// digest is only checked at EOF.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return fmt.Errorf("read layer %s: %w", diffID, err)
	}
	if got := want.Algorithm().String() + ":" + hex.EncodeToString(h.Sum(nil)); got != diffID {
		return fmt.Errorf("layer %s: %w: uncompressed content has digest %s", diffID, ErrInvalidLayer, got)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("layer %s: %w", diffID, err)
	}
	if err := os.Rename(tmp, s.layerPath(diffID)); err != nil {
		if exists(s.layerPath(diffID)) { // another writer won; same content
			return os.RemoveAll(tmp)
		}
		return fmt.Errorf("layer %s: %w", diffID, err)
	}
	klog.V(2).InfoS("Unpacked layer", "diffID", diffID)
	return nil
}

// layerReader returns the layer's uncompressed tar stream.
func layerReader(l v1.Layer, verifyCompressed bool) (io.ReadCloser, error) {
	if !verifyCompressed {
		return l.Uncompressed()
	}
	want, err := l.Digest()
	if err != nil {
		return nil, err
	}
	size, err := l.Size()
	if err != nil {
		return nil, err
	}
	h, err := v1.Hasher(want.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidLayer, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	return decompress(&digestReader{r: rc, h: h, want: want, size: size}, rc)
}

// digestReader checks the compressed stream's digest itself, so that a
// mismatch carries ErrInvalidLayer whatever the underlying reader reports.
type digestReader struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	want v1.Hash
	size int64
}

func (d *digestReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.h.Write(p[:n])
	d.n += int64(n)
	if err != nil && (errors.Is(err, io.EOF) || d.n >= d.size) {
		if got := hex.EncodeToString(d.h.Sum(nil)); got != d.want.Hex {
			return n, fmt.Errorf("%w: compressed content has digest %s:%s, want %s", ErrInvalidLayer, d.want.Algorithm, got, d.want)
		}
	}
	return n, err
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
