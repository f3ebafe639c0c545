package image

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	// imagesBucket: image ID → JSON imageRecord.
	imagesBucket = []byte("images")
	// refsBucket: normalized tag or digest reference → image ID.
	refsBucket = []byte("refs")
)

// imageRecord is the persisted, immutable-per-ID part of an Image; its
// references live in refsBucket so that a tag moves with one Put.
type imageRecord struct {
	ID             string      `json:"id"`
	ManifestDigest string      `json:"manifestDigest"`
	Size           uint64      `json:"size"`
	Pinned         bool        `json:"pinned,omitempty"`
	Created        time.Time   `json:"created"`
	DiffIDs        []string    `json:"diffIDs"`
	Config         ImageConfig `json:"config"`
}

func openDB(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open metadata %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{imagesBucket, refsBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init metadata %s: %w", path, err)
	}
	return db, nil
}

func getRecord(tx *bolt.Tx, id string) (imageRecord, error) {
	raw := tx.Bucket(imagesBucket).Get([]byte(id))
	if raw == nil {
		return imageRecord{}, fmt.Errorf("image %s: %w", id, ErrNotFound)
	}
	var rec imageRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return imageRecord{}, fmt.Errorf("decode image %s: %w", id, err)
	}
	return rec, nil
}

func putRecord(tx *bolt.Tx, rec imageRecord) error {
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode image %s: %w", rec.ID, err)
	}
	return tx.Bucket(imagesBucket).Put([]byte(rec.ID), raw)
}

// putRefs points every ref at id; a tag that named another image moves.
func putRefs(tx *bolt.Tx, id string, refs []string) error {
	b := tx.Bucket(refsBucket)
	for _, ref := range refs {
		if err := b.Put([]byte(ref), []byte(id)); err != nil {
			return fmt.Errorf("put ref %s: %w", ref, err)
		}
	}
	return nil
}

// refsByImage maps each image ID to its sorted tags and digests.
func refsByImage(tx *bolt.Tx) map[string][]string {
	out := map[string][]string{}
	_ = tx.Bucket(refsBucket).ForEach(func(k, v []byte) error {
		out[string(v)] = append(out[string(v)], string(k))
		return nil
	})
	return out
}

func deleteImage(tx *bolt.Tx, id string) error {
	refs := tx.Bucket(refsBucket)
	var doomed [][]byte
	_ = refs.ForEach(func(k, v []byte) error {
		if string(v) == id {
			doomed = append(doomed, slices.Clone(k))
		}
		return nil
	})
	for _, k := range doomed {
		if err := refs.Delete(k); err != nil {
			return err
		}
	}
	return tx.Bucket(imagesBucket).Delete([]byte(id))
}

func allRecords(tx *bolt.Tx) ([]imageRecord, error) {
	var recs []imageRecord
	err := tx.Bucket(imagesBucket).ForEach(func(k, v []byte) error {
		var rec imageRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("decode image %s: %w", k, err)
		}
		recs = append(recs, rec)
		return nil
	})
	return recs, err
}

// toImage joins a record with its references.
func toImage(rec imageRecord, refs []string) Image {
	img := Image{
		ID:      rec.ID,
		Size:    rec.Size,
		Pinned:  rec.Pinned,
		Created: rec.Created,
		DiffIDs: rec.DiffIDs,
		Config:  rec.Config,
	}
	for _, r := range refs {
		if strings.Contains(r, "@") {
			img.RepoDigests = append(img.RepoDigests, r)
		} else {
			img.RepoTags = append(img.RepoTags, r)
		}
	}
	slices.Sort(img.RepoTags)
	slices.Sort(img.RepoDigests)
	return img.clone()
}
