// Package names reserves CRI object names (pod sandbox and container names
// derived from their metadata) so that two creations of the same name never
// run at once. A reservation is taken before any side effect, committed
// when the object exists, released when creation fails or the object is
// removed. A caller that finds a name taken can wait for the creation in
// progress to finish instead of starting a second one.
package names

import (
	"context"
	"fmt"
	"sync"

	"github.com/podvisor/podvisor/cri/errdefs"
)

// Registry holds the reservations. The zero value is not usable; use New.
type Registry struct {
	mu    sync.Mutex
	names map[string]*claim
}

type claim struct {
	key       string
	committed bool
	settled   chan struct{} // closed on Commit or Release
}

// New returns an empty registry.
func New() *Registry { return &Registry{names: map[string]*claim{}} }

// Reserve claims name for key. Reserving a name already held by the same key
// succeeds; a name held by another key is ErrAlreadyExists naming it.
func (r *Registry) Reserve(name, key string) error {
	if name == "" || key == "" {
		return fmt.Errorf("reserve name: empty name or key: %w", errdefs.ErrInvalidArgument)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.names[name]; ok {
		if c.key == key {
			return nil
		}
		return fmt.Errorf("name %q is reserved for %q: %w", name, c.key, errdefs.ErrAlreadyExists)
	}
	r.names[name] = &claim{key: key, settled: make(chan struct{})}
	return nil
}

// Commit marks the creation under name finished. Reservations restored at
// start-up are reserved and committed at once.
func (r *Registry) Commit(name, key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.names[name]; ok && c.key == key && !c.committed {
		c.committed = true
		close(c.settled)
	}
}

// Release frees name if key holds it.
func (r *Registry) Release(name, key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.names[name]
	if !ok || c.key != key {
		return
	}
	delete(r.names, name)
	if !c.committed {
		close(c.settled)
	}
}

// Holder returns the key holding name, if any.
func (r *Registry) Holder(name string) (key string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.names[name]
	if !ok {
		return "", false
	}
	return c.key, true
}

// Wait blocks until the reservation that holds name now is committed or
// released, or ctx ends. It returns the holder's key and whether the name
// is committed to it; a name that is free is ("", false, nil).
func (r *Registry) Wait(ctx context.Context, name string) (key string, committed bool, err error) {
	r.mu.Lock()
	c, ok := r.names[name]
	r.mu.Unlock()
	if !ok {
		return "", false, nil
	}
	select {
	case <-c.settled:
	case <-ctx.Done():
		return c.key, false, fmt.Errorf("wait for %q: %w", name, ctx.Err())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return c.key, c.committed && r.names[name] == c, nil
}
