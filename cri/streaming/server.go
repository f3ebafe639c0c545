package streaming

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	kubestreaming "k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/cri/errdefs"
)

// ErrNotServing is returned by the Get methods before Start and after Stop.
// It is of kind ErrUnavailable.
var ErrNotServing = fmt.Errorf("streaming server is not serving: %w", errdefs.ErrUnavailable)

const (
	// readHeaderTimeout bounds the request line and headers, before a
	// connection is upgraded to a stream.
	readHeaderTimeout = 30 * time.Second
	// stopGrace is how long Stop lets the requests in progress tell their
	// clients that the server is stopping before it closes their
	// connections. A port forward waits for its client to go, so it
	// always takes that long.
	stopGrace = time.Second
)

// Server serves the exec, attach and port-forward streams whose URLs the
// CRI Exec, Attach and PortForward calls return.
type Server struct {
	cfg     Config
	backend Backend

	mu sync.Mutex
	// lib is kubelet's streaming server, made at Start once the listening
	// address (and so the URLs) is known; nil when not serving.
	lib      kubestreaming.Server
	runtime  *runtime
	http     *http.Server
	conns    *connSet
	inFlight *inFlight
	url      *url.URL
	done     chan struct{}
}

// New validates cfg and returns a server that is not yet listening.
func New(cfg Config, backend Backend) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if backend == nil {
		return nil, fmt.Errorf("%w: no backend", ErrInvalidConfig)
	}
	return &Server{cfg: cfg, backend: backend}, nil
}

// Start listens and serves in the background. It returns once the address
// is bound, so that the URLs the Get methods return are final.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lib != nil {
		return errors.New("streaming server already started")
	}
	var tlsConfig *tls.Config
	if s.cfg.EnableTLS {
		cert, err := s.certificate()
		if err != nil {
			return err
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", s.cfg.Address)
	if err != nil {
		return fmt.Errorf("streaming server: %w", err)
	}
	base := &url.URL{Scheme: "http", Host: ln.Addr().String()}
	if tlsConfig != nil {
		base.Scheme = "https"
	}
	libCfg := kubestreaming.DefaultConfig
	libCfg.Addr = base.Host
	libCfg.BaseURL = base
	libCfg.StreamIdleTimeout = s.cfg.StreamIdleTimeout
	libCfg.StreamCreationTimeout = s.cfg.StreamCreationTimeout
	libCfg.TLSConfig = tlsConfig
	rt := &runtime{backend: s.backend, stopping: make(chan struct{})}
	lib, err := kubestreaming.NewServer(libCfg, rt)
	if err != nil {
		ln.Close()
		return fmt.Errorf("streaming server: %w", err)
	}
	// The library's own Start would bind the address again and leaves
	// upgraded connections open at Stop; serving its handler here does
	// neither.
	s.conns = &connSet{conns: map[net.Conn]struct{}{}}
	s.inFlight = &inFlight{}
	s.http = &http.Server{
		Handler:           s.inFlight.wrap(lib),
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: readHeaderTimeout,
	}
	s.lib, s.runtime = lib, rt
	s.url = base
	s.done = make(chan struct{})
	srv, done := s.http, s.done
	ln = &trackingListener{Listener: ln, set: s.conns}
	go func() {
		defer close(done)
		var err error
		if tlsConfig != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			klog.ErrorS(err, "Streaming server failed", "url", base)
		}
	}()
	klog.InfoS("Streaming server listening", "url", base)
	return nil
}

// Stop ends the streams in progress, telling their clients so (exec'd
// processes are killed, attached clients detached), and closes the
// listener and every connection. The server can be started again.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lib == nil {
		return nil
	}
	close(s.runtime.stopping)
	err := s.http.Close()
	if !s.inFlight.wait(stopGrace) {
		klog.V(2).InfoS("Closing streams still open after the stop grace period")
	}
	// http.Server.Close does not close connections upgraded to streams.
	s.conns.closeAll()
	<-s.done
	s.lib, s.runtime, s.http, s.conns, s.inFlight, s.url, s.done = nil, nil, nil, nil, nil, nil, nil
	klog.InfoS("Streaming server stopped")
	return err
}

// URL is the server's base URL, or nil when it is not serving.
func (s *Server) URL() *url.URL {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.url == nil {
		return nil
	}
	u := *s.url
	return &u
}

func (s *Server) serving() (kubestreaming.Server, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lib == nil {
		return nil, ErrNotServing
	}
	return s.lib, nil
}

// GetExec validates req and returns the single-use URL of its stream.
// Invalid requests and a full token cache are gRPC status errors
// (InvalidArgument, ResourceExhausted), as kubelet's library makes them.
func (s *Server) GetExec(req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	lib, err := s.serving()
	if err != nil {
		return nil, err
	}
	if len(req.GetCmd()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "missing required cmd")
	}
	return lib.GetExec(req)
}

// GetAttach is GetExec for attach.
func (s *Server) GetAttach(req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	lib, err := s.serving()
	if err != nil {
		return nil, err
	}
	return lib.GetAttach(req)
}

// GetPortForward is GetExec for port forwarding.
func (s *Server) GetPortForward(req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	lib, err := s.serving()
	if err != nil {
		return nil, err
	}
	return lib.GetPortForward(req)
}

// inFlight counts the requests being served, streams included.
type inFlight struct{ n atomic.Int64 }

func (f *inFlight) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.n.Add(1)
		defer f.n.Add(-1)
		h.ServeHTTP(w, r)
	})
}

// wait polls until no request is in progress or timeout has passed.
func (f *inFlight) wait(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for f.n.Load() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// connSet holds the server's open connections.
type connSet struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func (c *connSet) add(conn net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.conns[conn] = struct{}{}
	return true
}

func (c *connSet) remove(conn net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.conns, conn)
}

func (c *connSet) closeAll() {
	c.mu.Lock()
	c.closed = true
	conns := c.conns
	c.conns = nil
	c.mu.Unlock()
	for conn := range conns {
		conn.Close()
	}
}

// trackingListener records accepted connections in a connSet until they
// are closed, by whoever ends up owning them.
type trackingListener struct {
	net.Listener
	set *connSet
}

func (l *trackingListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: conn, set: l.set}
		if l.set.add(tc) {
			return tc, nil
		}
		conn.Close()
	}
}

type trackedConn struct {
	net.Conn
	set  *connSet
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.set.remove(c) })
	return c.Conn.Close()
}
