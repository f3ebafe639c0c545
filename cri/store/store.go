package store

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/podvisor/podvisor/cri/errdefs"
)

// Record is one object: metadata fixed at creation and its current status.
// Values returned by the store are copies.
type Record[M, S any] struct {
	ID       string
	Metadata M
	Status   S
}

type entry[M, S any] struct {
	mu     sync.Mutex // serialises Update of this record
	id     string
	meta   M
	status S
}

// Store keeps records in memory and writes every change through to one
// bbolt bucket, so Open after a restart sees exactly what was acknowledged.
// Metadata and Status are encoded with encoding/json; types that need a
// different encoding implement json.Marshaler.
type Store[M, S any] struct {
	db     *bolt.DB
	bucket []byte

	mu      sync.RWMutex
	entries map[string]*entry[M, S]
	index   Index
}

type persisted[M, S any] struct {
	Metadata M `json:"metadata"`
	Status   S `json:"status"`
}

// Open loads every record of bucket from db.
func Open[M, S any](db *bolt.DB, bucket string) (*Store[M, S], error) {
	s := &Store[M, S]{db: db, bucket: []byte(bucket), entries: map[string]*entry[M, S]{}}
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(s.bucket)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var p persisted[M, S]
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("decode %s record %s: %w", bucket, k, err)
			}
			id := string(k)
			s.entries[id] = &entry[M, S]{id: id, meta: p.Metadata, status: p.Status}
			s.index.Add(id)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("open %s store: %w", bucket, err)
	}
	return s, nil
}

func (s *Store[M, S]) put(id string, meta M, st S) error {
	data, err := json.Marshal(persisted[M, S]{Metadata: meta, Status: st})
	if err != nil {
		return fmt.Errorf("encode %s record %s: %w", s.bucket, id, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(s.bucket).Put([]byte(id), data)
	})
}

// Add stores a new record. An existing id is ErrAlreadyExists.
func (s *Store[M, S]) Add(id string, meta M, st S) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[id]; ok {
		return fmt.Errorf("%s %q: %w", s.bucket, id, errdefs.ErrAlreadyExists)
	}
	if err := s.put(id, meta, st); err != nil {
		return err
	}
	s.entries[id] = &entry[M, S]{id: id, meta: meta, status: st}
	s.index.Add(id)
	return nil
}

func (s *Store[M, S]) lookup(idOrPrefix string) (*entry[M, S], error) {
	id, err := s.index.Get(idOrPrefix)
	if err != nil {
		return nil, fmt.Errorf("%s %w", s.bucket, err)
	}
	s.mu.RLock()
	e, ok := s.entries[id]
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%s %q: %w", s.bucket, idOrPrefix, errdefs.ErrNotFound)
	}
	return e, nil
}

// Get returns the record whose ID is idOrPrefix or uniquely starts with it.
func (s *Store[M, S]) Get(idOrPrefix string) (Record[M, S], error) {
	e, err := s.lookup(idOrPrefix)
	if err != nil {
		return Record[M, S]{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return Record[M, S]{ID: e.id, Metadata: e.meta, Status: e.status}, nil
}

// Update replaces a record's status with fn's result, persisting it first.
// fn sees the current status; its error aborts the update and is returned.
// Updates of one record are serialised.
func (s *Store[M, S]) Update(id string, fn func(S) (S, error)) (S, error) {
	e, err := s.lookup(id)
	if err != nil {
		var zero S
		return zero, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	next, err := fn(e.status)
	if err != nil {
		return e.status, err
	}
	if err := s.put(e.id, e.meta, next); err != nil {
		return e.status, err
	}
	e.status = next
	return next, nil
}

// Delete removes a record; an unknown id is ErrNotFound.
func (s *Store[M, S]) Delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[id]; !ok {
		return fmt.Errorf("%s %q: %w", s.bucket, id, errdefs.ErrNotFound)
	}
	err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(s.bucket).Delete([]byte(id)) })
	if err != nil {
		return fmt.Errorf("delete %s %q: %w", s.bucket, id, err)
	}
	delete(s.entries, id)
	s.index.Delete(id)
	return nil
}

// List returns every record, ordered by ID.
func (s *Store[M, S]) List() []Record[M, S] { return s.Select(nil) }

// Select returns the records keep accepts (all if keep is nil), ordered by
// ID: the index keeps the IDs sorted, and only the records kept are
// copied out. keep must not call back into the store.
func (s *Store[M, S]) Select(keep func(Record[M, S]) bool) []Record[M, S] {
	s.mu.RLock()
	es := make([]*entry[M, S], 0, len(s.entries))
	s.index.each(func(id string) {
		if e, ok := s.entries[id]; ok {
			es = append(es, e)
		}
	})
	s.mu.RUnlock()
	var out []Record[M, S]
	if keep == nil {
		out = make([]Record[M, S], 0, len(es))
	}
	for _, e := range es {
		e.mu.Lock()
		r := Record[M, S]{ID: e.id, Metadata: e.meta, Status: e.status}
		e.mu.Unlock()
		if keep == nil || keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// OpenDB opens (creating) the bbolt file at path with mode 0600.
func OpenDB(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}
