package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sync/errgroup"
)

// unpackParallelism bounds concurrent layer downloads of one image, like
// containerd's max_concurrent_downloads default.
const unpackParallelism = 3

// commit stores img — layers unpacked and verified, manifest and config
// blobs written — then records it with refs pointing at it. Compressed
// digests are verified when verifyCompressed is set (registry and OCI layout
// sources); a docker archive holds only uncompressed layers, checked by diffID.
func (s *Store) commit(ctx context.Context, img v1.Image, refs []string, verifyCompressed bool) (Image, error) {
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return Image{}, fmt.Errorf("read config: %w", err)
	}
	id := sha256Digest(rawCfg)
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return Image{}, fmt.Errorf("config %s: %w: %w", id, ErrInvalidArgument, err)
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return Image{}, fmt.Errorf("read manifest: %w", err)
	}
	manifestDigest := sha256Digest(rawManifest)
	manifest, err := img.Manifest()
	if err != nil {
		return Image{}, fmt.Errorf("parse manifest %s: %w", manifestDigest, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return Image{}, fmt.Errorf("image %s layers: %w", id, err)
	}
	diffIDs := make([]string, len(cfg.RootFS.DiffIDs))
	for i, d := range cfg.RootFS.DiffIDs {
		diffIDs[i] = d.String()
	}
	if len(layers) != len(diffIDs) {
		return Image{}, fmt.Errorf("image %s: %w: %d layers but %d diffIDs", id, ErrInvalidLayer, len(layers), len(diffIDs))
	}

	release := s.lease(append([]string{id, manifestDigest}, diffIDs...)...)
	defer release()

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(unpackParallelism)
	for i, l := range layers {
		g.Go(func() error { return s.ensureLayer(gctx, l, diffIDs[i], verifyCompressed) })
	}
	if err := g.Wait(); err != nil {
		return Image{}, err
	}
	if err := s.writeBlob(manifestDigest, rawManifest); err != nil {
		return Image{}, err
	}
	if err := s.writeBlob(id, rawCfg); err != nil {
		return Image{}, err
	}

	size := uint64(manifest.Config.Size)
	for _, l := range manifest.Layers {
		size += uint64(l.Size)
	}
	rec := imageRecord{
		ID:             id,
		ManifestDigest: manifestDigest,
		Size:           size,
		Created:        cfg.Created.Time,
		DiffIDs:        diffIDs,
		Config:         runtimeConfig(cfg.Config),
	}
	var out Image
	err = s.db.Update(func(tx *bolt.Tx) error {
		if old, err := getRecord(tx, id); err == nil {
			rec.Pinned = old.Pinned
		}
		if err := putRecord(tx, rec); err != nil {
			return err
		}
		if err := putRefs(tx, id, refs); err != nil {
			return err
		}
		out = toImage(rec, refsByImage(tx)[id])
		return nil
	})
	if err != nil {
		return Image{}, fmt.Errorf("record image %s: %w", id, err)
	}
	return out, nil
}

func runtimeConfig(c v1.Config) ImageConfig {
	out := ImageConfig{
		User:       c.User,
		Entrypoint: c.Entrypoint,
		Cmd:        c.Cmd,
		Env:        c.Env,
		WorkingDir: c.WorkingDir,
		Labels:     c.Labels,
		StopSignal: c.StopSignal,
	}
	for p := range c.ExposedPorts {
		out.ExposedPorts = append(out.ExposedPorts, p)
	}
	for v := range c.Volumes {
		out.Volumes = append(out.Volumes, v)
	}
	sort.Strings(out.ExposedPorts)
	sort.Strings(out.Volumes)
	return out
}

// writeBlob stores data under its digest d, atomically.
func (s *Store) writeBlob(d string, data []byte) error {
	dst := s.blobPath(d)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	f, err := os.CreateTemp(s.tmpDir(), "blob-")
	if err != nil {
		return fmt.Errorf("write blob %s: %w", d, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write blob %s: %w", d, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write blob %s: %w", d, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return fmt.Errorf("write blob %s: %w", d, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("write blob %s: %w", d, err)
	}
	return os.Rename(f.Name(), dst)
}

func sha256Digest(b []byte) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256(b))
}
