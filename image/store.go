package image

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sync/singleflight"
	"k8s.io/klog/v2"
)

// InUseFunc reports whether a container uses the image with this ID.
type InUseFunc func(imageID string) bool

// Store is the host's image store. It is safe for concurrent use.
type Store struct {
	root      string
	cfg       Config
	db        *bolt.DB
	unpacker  unpacker
	transport map[string]http.RoundTripper // by endpoint URL

	// life bounds background pulls: a pull is shared by every caller asking
	// for the same reference and finishes even if the caller that started it
	// gives up (kubelet retries then join it), so it runs on the store's
	// lifetime rather than on a request's context.
	life     context.Context
	stop     context.CancelFunc
	inflight sync.WaitGroup

	pulls  singleflight.Group // by reference and credentials
	layers singleflight.Group // by diffID, shared across images

	mu     sync.Mutex
	leases map[string]int // digests a commit in progress needs; GC keeps them
	inUse  InUseFunc
}

// Open opens (creating if needed) the store rooted at root, removes leftovers
// of interrupted work and garbage no image references.
func Open(root string, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("image root: %w", err)
	}
	for _, d := range []string{"blobs/sha256", "layers/sha256", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("image root: %w", err)
		}
	}
	if err := emptyDir(filepath.Join(root, "tmp")); err != nil {
		return nil, fmt.Errorf("clean staging: %w", err)
	}
	db, err := openDB(filepath.Join(root, "meta.db"))
	if err != nil {
		return nil, err
	}
	life, stop := context.WithCancel(context.Background())
	s := &Store{
		root:      root,
		cfg:       cfg,
		db:        db,
		unpacker:  newUnpacker(),
		transport: endpointTransports(cfg),
		life:      life,
		stop:      stop,
		leases:    map[string]int{},
	}
	if err := s.collectGarbage(); err != nil {
		s.Close()
		return nil, err
	}
	klog.InfoS("Opened image store", "root", root, "mirrors", len(cfg.Mirrors))
	return s, nil
}

// Close cancels pulls in progress, waits for them and closes the metadata.
func (s *Store) Close() error {
	s.stop()
	s.inflight.Wait()
	for _, t := range s.transport {
		if ht, ok := t.(*http.Transport); ok {
			ht.CloseIdleConnections()
		}
	}
	return s.db.Close()
}

// SetInUseFunc installs the predicate Remove consults; nil allows every removal.
func (s *Store) SetInUseFunc(fn InUseFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inUse = fn
}

func (s *Store) blobPath(d string) string  { return filepath.Join(s.root, "blobs", hexPath(d)) }
func (s *Store) layerPath(d string) string { return filepath.Join(s.root, "layers", hexPath(d)) }
func (s *Store) tmpDir() string            { return filepath.Join(s.root, "tmp") }

// hexPath maps "sha256:<hex>" to "sha256/<hex>".
func hexPath(d string) string {
	dg := digestOf(d)
	return filepath.Join(dg.Algorithm().String(), dg.Encoded())
}

// lease keeps digests from garbage collection until release is called.
func (s *Store) lease(digests ...string) (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range digests {
		s.leases[d]++
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, d := range digests {
			if s.leases[d]--; s.leases[d] <= 0 {
				delete(s.leases, d)
			}
		}
	}
}

// endpointTransports builds one HTTP transport per mirror endpoint that needs
// its own TLS settings; others share remote.DefaultTransport.
func endpointTransports(cfg Config) map[string]http.RoundTripper {
	out := map[string]http.RoundTripper{}
	for _, eps := range cfg.Mirrors {
		for _, ep := range eps {
			if !ep.SkipVerify {
				continue
			}
			t := remote.DefaultTransport.(*http.Transport).Clone()
			t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the administrator asked for it
			out[ep.URL] = t
		}
	}
	return out
}

func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
