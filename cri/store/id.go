package store

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/podvisor/podvisor/cri/errdefs"
)

// GenerateID returns a random 64-hex-digit ID, the form CRI runtimes use.
func GenerateID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("read random bytes: %v", err)) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// Index resolves unique ID prefixes to IDs. It is safe for concurrent use.
type Index struct {
	mu  sync.RWMutex
	ids []string // sorted
}

// Add adds id to the index.
func (x *Index) Add(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	i := sort.SearchStrings(x.ids, id)
	if i < len(x.ids) && x.ids[i] == id {
		return
	}
	x.ids = append(x.ids, "")
	copy(x.ids[i+1:], x.ids[i:])
	x.ids[i] = id
}

// Delete removes id from the index.
func (x *Index) Delete(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	i := sort.SearchStrings(x.ids, id)
	if i < len(x.ids) && x.ids[i] == id {
		x.ids = append(x.ids[:i], x.ids[i+1:]...)
	}
}

// Get returns the ID that prefix identifies: an exact ID, or the only ID
// starting with prefix. No match is ErrNotFound; several are
// ErrInvalidArgument (the caller must give more digits).
func (x *Index) Get(prefix string) (string, error) {
	if prefix == "" {
		return "", fmt.Errorf("empty ID: %w", errdefs.ErrInvalidArgument)
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	i := sort.SearchStrings(x.ids, prefix)
	if i >= len(x.ids) || !strings.HasPrefix(x.ids[i], prefix) {
		return "", fmt.Errorf("ID %q: %w", prefix, errdefs.ErrNotFound)
	}
	if x.ids[i] != prefix && i+1 < len(x.ids) && strings.HasPrefix(x.ids[i+1], prefix) {
		return "", fmt.Errorf("ID prefix %q is ambiguous: %w", prefix, errdefs.ErrInvalidArgument)
	}
	return x.ids[i], nil
}

// each calls fn for every ID in order, under the index's read lock.
func (x *Index) each(fn func(id string)) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, id := range x.ids {
		fn(id)
	}
}
