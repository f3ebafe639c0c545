package network

import "sync"

// podLocks serialises Setup and Teardown of one pod while letting
// different pods proceed in parallel: a CNI ADD takes tens of milliseconds
// to seconds.
type podLocks struct {
	mu    sync.Mutex
	locks map[string]*podLock
}

type podLock struct {
	sync.Mutex
	refs int
}

// lock blocks until id is free and returns the matching unlock.
func (p *podLocks) lock(id string) (unlock func()) {
	p.mu.Lock()
	if p.locks == nil {
		p.locks = map[string]*podLock{}
	}
	l := p.locks[id]
	if l == nil {
		l = &podLock{}
		p.locks[id] = l
	}
	l.refs++
	p.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		p.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(p.locks, id)
		}
		p.mu.Unlock()
	}
}
