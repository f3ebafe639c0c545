package channel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// Limits on what the host may leave pending in the guest.
const (
	// headerTimeout bounds how long a new stream may take to name itself.
	headerTimeout = 5 * time.Second
	// pendingTTL is how long a stdio stream waits to be claimed by a
	// process before the guest drops it.
	pendingTTL = 30 * time.Second
	// maxPending caps unclaimed stdio streams.
	maxPending = 3 * 1024
)

type stdioKey struct {
	id   string
	kind StreamKind
}

// GuestSession is the agent's end of an authenticated session.
type GuestSession struct {
	tls *tls.Conn
	mux *yamux.Session

	control  chan net.Conn
	dialPort func(ctx context.Context, port uint16) (net.Conn, error)

	mu      sync.Mutex
	pending map[stdioKey]Stream
	arrived chan struct{} // closed and replaced whenever a stdio stream arrives
}

// Accept authenticates the host on conn and starts serving streams. On error
// conn is closed.
func Accept(ctx context.Context, conn net.Conn, self Identity, hostCert []byte, opts Options) (*GuestSession, error) {
	opts = opts.withDefaults()
	if err := skipToPreamble(ctx, conn, opts.HandshakeTimeout); err != nil {
		conn.Close()
		return nil, err
	}
	tc := tls.Server(conn, tlsConfig(self, hostCert))
	if err := handshake(ctx, tc, opts.HandshakeTimeout); err != nil {
		conn.Close()
		return nil, err
	}
	if err := writeAck(tc, opts.HandshakeTimeout); err != nil {
		tc.Close()
		return nil, err
	}
	ycfg := opts.yamux()
	mux, err := yamux.Server(tc, ycfg)
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("start multiplexer: %w", err)
	}
	g := &GuestSession{
		tls:     tc,
		mux:     mux,
		control: make(chan net.Conn),
		pending: map[stdioKey]Stream{},
		arrived: make(chan struct{}),
	}
	g.dialPort = opts.DialPort
	go g.acceptLoop(opts.MaxStreams)
	return g, nil
}

func (g *GuestSession) acceptLoop(maxStreams int) {
	for {
		st, err := g.mux.AcceptStream()
		if err != nil {
			return
		}
		if g.mux.NumStreams() > maxStreams {
			st.Close()
			continue
		}
		go g.route(Stream{st})
	}
}

// route reads a new stream's header and hands it to the control listener or
// parks it until a process claims it.
func (g *GuestSession) route(st Stream) {
	st.SetReadDeadline(time.Now().Add(headerTimeout))
	kind, id, err := readHeader(st)
	st.SetReadDeadline(time.Time{})
	if err != nil {
		st.Close()
		return
	}
	if kind == KindPort {
		g.forward(st, id)
		return
	}
	if kind == KindControl {
		select {
		case g.control <- st:
		case <-g.mux.CloseChan():
			st.Close()
		}
		return
	}
	k := stdioKey{id, kind}
	g.mu.Lock()
	if _, dup := g.pending[k]; dup || len(g.pending) >= maxPending {
		g.mu.Unlock()
		st.Close()
		return
	}
	g.pending[k] = st
	close(g.arrived)
	g.arrived = make(chan struct{})
	g.mu.Unlock()

	time.AfterFunc(pendingTTL, func() {
		g.mu.Lock()
		cur, ok := g.pending[k]
		if ok && cur == st {
			delete(g.pending, k)
		}
		g.mu.Unlock()
		if ok && cur == st {
			st.Close()
		}
	})
}

// Take claims the stdio stream of kind the host opened for process id,
// waiting until it arrives or ctx ends.
func (g *GuestSession) Take(ctx context.Context, id string, kind StreamKind) (Stream, error) {
	k := stdioKey{id, kind}
	for {
		g.mu.Lock()
		st, ok := g.pending[k]
		if ok {
			delete(g.pending, k)
		}
		arrived := g.arrived
		g.mu.Unlock()
		if ok {
			return st, nil
		}
		select {
		case <-arrived:
		case <-ctx.Done():
			return Stream{}, fmt.Errorf("%s stream of process %q: %w", kind, id, ctx.Err())
		case <-g.mux.CloseChan():
			return Stream{}, fmt.Errorf("%s stream of process %q: %w", kind, id, net.ErrClosed)
		}
	}
}

// Listener returns the control streams as a net.Listener for a gRPC server.
// Closing it stops Accept; the session stays up.
func (g *GuestSession) Listener() net.Listener {
	return &controlListener{g: g, closed: make(chan struct{})}
}

// Done is closed when the session ends.
func (g *GuestSession) Done() <-chan struct{} { return g.mux.CloseChan() }

// Close ends the session and the transport under it.
func (g *GuestSession) Close() error {
	err := g.mux.Close()
	g.tls.Close()
	g.mu.Lock()
	for k, st := range g.pending {
		st.Close()
		delete(g.pending, k)
	}
	g.mu.Unlock()
	return err
}

type controlListener struct {
	g      *GuestSession
	once   sync.Once
	closed chan struct{}
}

func (l *controlListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.g.control:
		return c, nil
	case <-l.g.mux.CloseChan():
		return nil, net.ErrClosed
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *controlListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *controlListener) Addr() net.Addr { return l.g.mux.Addr() }

// IsClosed reports whether err means the session is over.
func IsClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, yamux.ErrSessionShutdown)
}

// dialTimeout bounds connecting a port-forward stream inside the guest.
const dialTimeout = 10 * time.Second

// forward connects a port stream to the guest port and copies both ways,
// passing on each side's end of writing.
func (g *GuestSession) forward(st Stream, port string) {
	defer st.Close()
	n, _ := strconv.Atoi(port)
	if g.dialPort == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	c, err := g.dialPort(ctx, uint16(n))
	cancel()
	if err != nil {
		return
	}
	defer c.Close()
	done := make(chan struct{})
	go func() {
		io.Copy(c, st)
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		close(done)
	}()
	io.Copy(st, c)
	st.CloseWrite()
	<-done
}
