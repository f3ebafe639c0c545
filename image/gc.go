package image

import (
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
	"k8s.io/klog/v2"
)

// collectGarbage removes unpacked layers and blobs that no recorded image
// references and no commit in progress has leased: mark and sweep, so a crash
// between unpacking and recording leaves nothing behind for long.
func (s *Store) collectGarbage() error {
	s.mu.Lock()
	live := map[string]bool{}
	for d := range s.leases {
		live[d] = true
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		recs, err := allRecords(tx)
		for _, r := range recs {
			live[r.ID] = true
			live[r.ManifestDigest] = true
			for _, d := range r.DiffIDs {
				live[d] = true
			}
		}
		return err
	})
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("collect garbage: %w", err)
	}
	// Under the lock, dead layers are only moved aside (a rename): a pull
	// that leases one afterwards finds it gone and unpacks it again.
	var doomed []string
	for _, kind := range []string{"layers", "blobs"} {
		dir := filepath.Join(s.root, kind, "sha256")
		entries, err := os.ReadDir(dir)
		if err != nil {
			s.mu.Unlock()
			return fmt.Errorf("collect garbage: %w", err)
		}
		for _, e := range entries {
			if live["sha256:"+e.Name()] {
				continue
			}
			trash, err := os.MkdirTemp(s.tmpDir(), "gc-")
			if err != nil {
				s.mu.Unlock()
				return fmt.Errorf("collect garbage: %w", err)
			}
			if err := os.Rename(filepath.Join(dir, e.Name()), filepath.Join(trash, e.Name())); err != nil {
				s.mu.Unlock()
				return fmt.Errorf("collect garbage: %w", err)
			}
			doomed = append(doomed, trash)
		}
	}
	s.mu.Unlock()
	for _, d := range doomed {
		if err := os.RemoveAll(d); err != nil {
			klog.ErrorS(err, "Failed to remove garbage", "path", d)
		}
	}
	if len(doomed) > 0 {
		klog.V(2).InfoS("Collected image garbage", "removed", len(doomed))
	}
	return nil
}
