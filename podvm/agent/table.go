package agent

import (
	"fmt"
	"sort"
	"sync"
)

// table holds the processes by id. An entry is reserved before the process
// starts, so that two requests for one id cannot both start it, and published
// once it runs; lookups do not see reserved entries.
type table struct {
	max int

	mu        sync.Mutex
	procs     map[string]*process
	published map[string]bool
}

func newTable(max int) *table {
	return &table{max: max, procs: make(map[string]*process), published: make(map[string]bool)}
}

// reserve claims p.id. Entries count against the limit until they are
// removed, exited or not: an exited process keeps its status (and arguments)
// until the host removes it, and that memory must be bounded too.
func (t *table) reserve(p *process) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.procs[p.id]; ok {
		return fmt.Errorf("id: process %q: %w", p.id, ErrAlreadyExists)
	}
	if len(t.procs) >= t.max {
		return fmt.Errorf("%d processes not yet removed, the limit: %w", len(t.procs), ErrResourceExhausted)
	}
	t.procs[p.id] = p
	return nil
}

// release drops a reservation whose process did not start.
func (t *table) release(p *process) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.procs[p.id] == p && !t.published[p.id] {
		delete(t.procs, p.id)
	}
}

func (t *table) publish(p *process) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.published[p.id] = true
}

func (t *table) get(id string) (*process, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.published[id] {
		return nil, fmt.Errorf("id: process %q: %w", id, ErrNotFound)
	}
	return t.procs[id], nil
}

// remove forgets the process id if ok accepts it. It returns false when there
// is no such (published) process.
func (t *table) remove(id string, ok func(*process) error) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.published[id] {
		return false, nil
	}
	p := t.procs[id]
	if err := ok(p); err != nil {
		return true, err
	}
	delete(t.procs, id)
	delete(t.published, id)
	return true, nil
}

// list returns the published processes ordered by id.
func (t *table) list() []*process {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*process, 0, len(t.published))
	for id := range t.published {
		out = append(out, t.procs[id])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (t *table) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.procs)
}
