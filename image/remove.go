package image

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"k8s.io/klog/v2"
)

// Remove deletes the image refOrID names — by ID, tag or digest — with all
// its tags and digests, as CRI's RemoveImage does (critest: removing by one
// tag removes them all), then its layers and blobs no other image uses.
// Removing an image that does not exist succeeds. It fails with ErrInUse
// while the InUseFunc reports a container using the image.
func (s *Store) Remove(ctx context.Context, refOrID string) error {
	var id string
	err := s.db.View(func(tx *bolt.Tx) error {
		rec, err := lookup(tx, refOrID)
		id = rec.ID
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	// Asked outside any transaction: the predicate may call back into the store.
	s.mu.Lock()
	inUse := s.inUse
	s.mu.Unlock()
	if inUse != nil && inUse(id) {
		return fmt.Errorf("remove image %s: %w", id, ErrInUse)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return deleteImage(tx, id) }); err != nil {
		return fmt.Errorf("remove image %s: %w", id, err)
	}
	klog.InfoS("Removed image", "imageID", id, "ref", refOrID)
	return s.collectGarbage()
}

// SetPinned marks an image as exempt (or not) from kubelet's image garbage
// collection; the CRI layer pins the sandbox image.
func (s *Store) SetPinned(ctx context.Context, refOrID string, pinned bool) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		rec, err := lookup(tx, refOrID)
		if err != nil {
			return err
		}
		rec.Pinned = pinned
		return putRecord(tx, rec)
	})
}
