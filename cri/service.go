package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	bolt "go.etcd.io/bbolt"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/store"
	"github.com/podvisor/podvisor/cri/store/container"
	"github.com/podvisor/podvisor/cri/store/names"
	"github.com/podvisor/podvisor/cri/store/sandbox"
)

// Paths are the service's directories.
type Paths struct {
	// Root holds persistent state (the bbolt store, the audit log).
	Root string
	// State holds runtime state that does not survive a reboot.
	State string
}

// Service implements the CRI RuntimeService; ImageService() returns the
// ImageService over the same state.
type Service struct {
	runtime.UnimplementedRuntimeServiceServer

	cfg   Config
	paths Paths
	b     Backends

	// svcCtx outlives every request: VM-lifetime goroutines (exit
	// watchers, log copiers) run on it, and Close cancels it.
	svcCtx    context.Context
	svcCancel context.CancelFunc

	db             *bolt.DB
	sandboxes      *sandbox.Store
	containers     *container.Store
	sandboxNames   *names.Registry
	containerNames *names.Registry
	events         *broadcaster

	// sandboxLocks serialise the lifecycle RPCs of one sandbox and of its
	// containers' creation.
	sandboxLocks keyedMutex

	// ops are the sandbox boots, container creations and starts in
	// flight (see inflight.go).
	ops opTable

	// nri relays the lifecycle to NRI plugins; nil when NRI is disabled.
	nri *nriHooks

	mu    sync.Mutex
	vms   map[string]PodVM // by sandbox ID
	tasks map[string]*task // by container ID
	execs sync.WaitGroup
}

// New opens the stores under paths.Root, re-attaches to the VMs that
// survived a restart and returns the service. All backends except Streams
// are required.
func New(ctx context.Context, cfg Config, paths Paths, b Backends) (_ *Service, retErr error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var missing []error
	if b.VMs == nil {
		missing = append(missing, errors.New("no VM runtime"))
	}
	if b.Images == nil {
		missing = append(missing, errors.New("no image store"))
	}
	if b.Network == nil {
		missing = append(missing, errors.New("no network"))
	}
	if b.Logs == nil {
		missing = append(missing, errors.New("no log opener"))
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("cri: %w", errors.Join(missing...))
	}
	for _, d := range []string{paths.Root, paths.State} {
		if !filepath.IsAbs(d) {
			return nil, fmt.Errorf("cri: directory %q is not absolute", d)
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("cri: %w", err)
		}
	}
	db, err := store.OpenDB(filepath.Join(paths.Root, "cri.db"))
	if err != nil {
		return nil, fmt.Errorf("cri: %w", err)
	}
	defer func() {
		if retErr != nil {
			db.Close()
		}
	}()
	sbs, err := sandbox.Open(db)
	if err != nil {
		return nil, err
	}
	ctrs, err := container.Open(db)
	if err != nil {
		return nil, err
	}
	svcCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Service{
		cfg: cfg, paths: paths, b: b,
		svcCtx: svcCtx, svcCancel: cancel,
		db: db, sandboxes: sbs, containers: ctrs,
		sandboxNames: names.New(), containerNames: names.New(),
		events: newBroadcaster(eventBuffer),
		vms:    map[string]PodVM{}, tasks: map[string]*task{},
	}
	if s.nri, err = s.newNRI(cfg.NRI); err != nil {
		cancel()
		return nil, err
	}
	s.restore(ctx)
	// Plugins are synchronised with the restored state, so a restarted
	// daemon hands them every pod and container that survived.
	if err := s.nri.start(cfg.NRI); err != nil {
		cancel()
		return nil, err
	}
	return s, nil
}

// SetStreamServer sets the server that returns exec/attach/port-forward
// URLs; it calls back into s through StreamBackend.
func (s *Service) SetStreamServer(srv StreamServer) { s.b.Streams = srv }

// Close stops the service's goroutines and closes the store. Pod VMs keep
// running: a restarted daemon re-attaches to them.
func (s *Service) Close() error {
	s.nri.stop()
	s.svcCancel()
	s.ops.closeAndWait()
	s.events.close()
	s.execs.Wait()
	return s.db.Close()
}

// ImageService returns the CRI ImageService.
func (s *Service) ImageService() runtime.ImageServiceServer { return &imageService{s: s} }

type imageService struct {
	runtime.UnimplementedImageServiceServer
	s *Service
}

func (s *Service) vm(sandboxID string) (PodVM, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vms[sandboxID]
	return v, ok
}

func (s *Service) task(containerID string) (*task, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[containerID]
	return t, ok
}

// keyedMutex is a mutex per key.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
