package image

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Get finds an image by ID ("sha256:<hex>" or bare hex), by a unique ID
// prefix, or by a tag or digest reference (normalized, so "busybox" finds
// "docker.io/library/busybox:latest") — the forms CRI's ImageSpec carries.
func (s *Store) Get(ctx context.Context, refOrID string) (Image, error) {
	var out Image
	err := s.db.View(func(tx *bolt.Tx) error {
		rec, err := lookup(tx, refOrID)
		if err != nil {
			return err
		}
		out = toImage(rec, refsByImage(tx)[rec.ID])
		return nil
	})
	return out, err
}

// List returns every image.
func (s *Store) List(ctx context.Context) ([]Image, error) {
	var out []Image
	err := s.db.View(func(tx *bolt.Tx) error {
		recs, err := allRecords(tx)
		if err != nil {
			return err
		}
		refs := refsByImage(tx)
		for _, r := range recs {
			out = append(out, toImage(r, refs[r.ID]))
		}
		return nil
	})
	return out, err
}

func lookup(tx *bolt.Tx, refOrID string) (imageRecord, error) {
	if refOrID == "" {
		return imageRecord{}, fmt.Errorf("%w: empty", ErrInvalidReference)
	}
	hexPart := strings.TrimPrefix(refOrID, "sha256:")
	isHex := isLowerHex(hexPart)
	if isHex && len(hexPart) == 64 {
		return getRecord(tx, "sha256:"+hexPart)
	}
	named, perr := parseReference(refOrID)
	if perr == nil {
		if id := tx.Bucket(refsBucket).Get([]byte(named.String())); id != nil {
			return getRecord(tx, string(id))
		}
	}
	if !isHex {
		if perr != nil {
			return imageRecord{}, perr
		}
		return imageRecord{}, fmt.Errorf("image %q: %w", refOrID, ErrNotFound)
	}
	return lookupPrefix(tx, hexPart)
}

// lookupPrefix resolves a short ID, refusing an ambiguous one.
func lookupPrefix(tx *bolt.Tx, hexPrefix string) (imageRecord, error) {
	prefix := []byte("sha256:" + hexPrefix)
	c := tx.Bucket(imagesBucket).Cursor()
	var match []byte
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if match != nil {
			return imageRecord{}, fmt.Errorf("image ID prefix %q: %w: ambiguous", hexPrefix, ErrNotFound)
		}
		match = k
	}
	if match == nil {
		return imageRecord{}, fmt.Errorf("image %q: %w", hexPrefix, ErrNotFound)
	}
	return getRecord(tx, string(match))
}

func isLowerHex(s string) bool {
	if s == "" || strings.ToLower(s) != s {
		return false
	}
	_, err := hex.DecodeString(s + strings.Repeat("0", len(s)%2))
	return err == nil
}
