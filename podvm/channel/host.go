package channel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/hashicorp/yamux"
)

// HostSession is podvisor's end of an authenticated session with one guest.
type HostSession struct {
	tls *tls.Conn
	mux *yamux.Session
}

// Connect authenticates the guest on conn (the raw transport) and starts
// multiplexing. self is the host's identity for this VM, guestCert the
// guest's pinned certificate. On error conn is closed.
func Connect(ctx context.Context, conn net.Conn, self Identity, guestCert []byte, opts Options) (*HostSession, error) {
	opts = opts.withDefaults()
	if err := writePreamble(conn, opts.HandshakeTimeout); err != nil {
		conn.Close()
		return nil, err
	}
	tc := tls.Client(conn, tlsConfig(self, guestCert))
	if err := handshake(ctx, tc, opts.HandshakeTimeout); err != nil {
		conn.Close()
		return nil, err
	}
	// In TLS 1.3 the client's handshake completes before the server has
	// checked the client certificate: wait for the guest's acceptance.
	if err := readAck(ctx, tc, opts.HandshakeTimeout); err != nil {
		tc.Close()
		return nil, err
	}
	mux, err := yamux.Client(tc, opts.yamux())
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("start multiplexer: %w", err)
	}
	s := &HostSession{tls: tc, mux: mux}
	go s.refuseGuestStreams()
	return s, nil
}

// refuseGuestStreams closes every stream the guest tries to open: only the
// host opens streams.
func (s *HostSession) refuseGuestStreams() {
	for {
		st, err := s.mux.AcceptStream()
		if err != nil {
			return
		}
		st.Close()
	}
}

func (s *HostSession) open(ctx context.Context, kind StreamKind, id string) (Stream, error) {
	type result struct {
		st  *yamux.Stream
		err error
	}
	ch := make(chan result, 1)
	go func() {
		st, err := s.mux.OpenStream()
		ch <- result{st, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.st != nil {
				r.st.Close()
			}
		}()
		return Stream{}, ctx.Err()
	}
	if r.err != nil {
		return Stream{}, fmt.Errorf("open %s stream: %w", kind, r.err)
	}
	if err := writeHeader(r.st, kind, id); err != nil {
		r.st.Close()
		return Stream{}, fmt.Errorf("open %s stream: %w", kind, err)
	}
	return Stream{r.st}, nil
}

// DialControl opens a control stream; it fits grpc.WithContextDialer.
func (s *HostSession) DialControl(ctx context.Context, _ string) (net.Conn, error) {
	return s.open(ctx, KindControl, "")
}

// OpenStdio opens the stdio stream of kind for process id. Open the streams
// a process needs before asking the agent to start it.
func (s *HostSession) OpenStdio(ctx context.Context, id string, kind StreamKind) (Stream, error) {
	if !kind.isStdio() {
		return Stream{}, fmt.Errorf("%s is not a stdio stream kind", kind)
	}
	return s.open(ctx, kind, id)
}

// OpenPort opens a stream connected to TCP port on the guest's loopback.
func (s *HostSession) OpenPort(ctx context.Context, port uint16) (Stream, error) {
	if port == 0 {
		return Stream{}, errors.New("port 0")
	}
	st, err := s.open(ctx, KindPort, "")
	if err != nil {
		return Stream{}, err
	}
	if _, err := st.Write([]byte{byte(port >> 8), byte(port)}); err != nil {
		st.Close()
		return Stream{}, fmt.Errorf("open port stream: %w", err)
	}
	return st, nil
}

// Done is closed when the session ends (peer gone, keepalive failed, Close).
func (s *HostSession) Done() <-chan struct{} { return s.mux.CloseChan() }

// Close ends the session and the transport under it.
func (s *HostSession) Close() error {
	err := s.mux.Close()
	s.tls.Close()
	return err
}
