package channel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/yamux"
)

// StreamKind says what a stream carries; it is the first byte the host
// writes on every stream it opens.
type StreamKind byte

const (
	// KindControl streams carry the agent's gRPC control protocol.
	KindControl StreamKind = 'C'
	// KindStdin, KindStdout and KindStderr carry one stdio pipe of a
	// process; the header continues with the process id.
	KindStdin  StreamKind = '0'
	KindStdout StreamKind = '1'
	KindStderr StreamKind = '2'
	// KindPort streams reach a TCP port on the guest's loopback
	// (port-forward); the header continues with the port, big-endian.
	KindPort StreamKind = 'P'
)

func (k StreamKind) String() string {
	switch k {
	case KindControl:
		return "control"
	case KindStdin:
		return "stdin"
	case KindStdout:
		return "stdout"
	case KindStderr:
		return "stderr"
	case KindPort:
		return "port"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

func (k StreamKind) isStdio() bool { return k == KindStdin || k == KindStdout || k == KindStderr }

// MaxProcessIDLen bounds the process id in a stdio stream header.
const MaxProcessIDLen = 64

// Options tune a session. Zero values take the defaults.
type Options struct {
	// HandshakeTimeout bounds the TLS handshake (default 10 s).
	HandshakeTimeout time.Duration
	// KeepAlive is the interval of liveness pings; a peer that does not
	// answer within WriteTimeout fails the session (defaults 5 s / 10 s).
	KeepAlive    time.Duration
	WriteTimeout time.Duration
	// MaxStreams bounds the streams open at once (default 4096).
	MaxStreams int
	// DialPort, on the guest side, connects port-forward streams to a port
	// of the guest; nil refuses them.
	DialPort func(ctx context.Context, port uint16) (net.Conn, error)
}

func (o Options) withDefaults() Options {
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = 5 * time.Second
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.MaxStreams == 0 {
		o.MaxStreams = 4096
	}
	return o
}

func (o Options) yamux() *yamux.Config {
	c := yamux.DefaultConfig()
	c.EnableKeepAlive = true
	c.KeepAliveInterval = o.KeepAlive
	c.ConnectionWriteTimeout = o.WriteTimeout
	c.StreamOpenTimeout = o.WriteTimeout
	c.StreamCloseTimeout = time.Minute
	c.AcceptBacklog = 256
	c.LogOutput = io.Discard
	return c
}

// handshake runs the TLS handshake on conn within the configured timeout
// (and ctx), then clears the deadline.
func handshake(ctx context.Context, conn *tls.Conn, timeout time.Duration) error {
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		if errors.Is(err, ErrAuth) || isAuthAlert(err) {
			return fmt.Errorf("%w: %v", ErrAuth, err)
		}
		return fmt.Errorf("tls handshake: %w", err)
	}
	return nil
}

// isAuthAlert recognises the alerts a peer sends when it rejected our
// certificate, so that both sides report a refused handshake as ErrAuth.
func isAuthAlert(err error) bool {
	var alert tls.AlertError
	if errors.As(err, &alert) {
		switch alert {
		case 42, 43, 44, 45, 46, 48, 116: // bad/unsupported/revoked/expired/unknown certificate, unknown CA, certificate required
			return true
		}
	}
	// crypto/tls reports alerts received from the peer as a plain error
	// naming the alert.
	msg := err.Error()
	for _, s := range []string{"bad certificate", "unknown certificate", "certificate required"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// preamble starts every session, sent by the host before TLS. Transports
// without connections (virtio-serial) may still hold bytes an earlier host
// left unread; the guest discards everything before the preamble.
var preamble = []byte("\x00podvisor-channel-v1\x00")

// maxSkip bounds the stale bytes the guest discards while looking for the
// preamble.
const maxSkip = 1 << 20

func writePreamble(c net.Conn, timeout time.Duration) error {
	c.SetWriteDeadline(time.Now().Add(timeout))
	defer c.SetWriteDeadline(time.Time{})
	if _, err := c.Write(preamble); err != nil {
		return fmt.Errorf("send preamble: %w", err)
	}
	return nil
}

// skipToPreamble reads c one byte at a time (nothing after the preamble may
// be consumed) until the preamble has gone by.
func skipToPreamble(ctx context.Context, c net.Conn, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetReadDeadline(deadline)
	defer c.SetReadDeadline(time.Time{})
	var b [1]byte
	matched := 0
	for n := 0; n < maxSkip+len(preamble); n++ {
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return fmt.Errorf("wait for preamble: %w", err)
		}
		switch {
		case b[0] == preamble[matched]:
			matched++
		case b[0] == preamble[0]:
			// No longer prefix of the preamble recurs inside it, so a
			// mismatch on its first byte restarts the match at one.
			matched = 1
		default:
			matched = 0
		}
		if matched == len(preamble) {
			return nil
		}
	}
	return fmt.Errorf("wait for preamble: no preamble in %d bytes", maxSkip)
}

// ackByte is the guest's confirmation that it accepted the host.
const ackByte = 0x06

func writeAck(c *tls.Conn, timeout time.Duration) error {
	c.SetWriteDeadline(time.Now().Add(timeout))
	defer c.SetWriteDeadline(time.Time{})
	if _, err := c.Write([]byte{ackByte}); err != nil {
		return fmt.Errorf("send acceptance: %w", err)
	}
	return nil
}

func readAck(ctx context.Context, c *tls.Conn, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetReadDeadline(deadline)
	defer c.SetReadDeadline(time.Time{})
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		if isAuthAlert(err) {
			return fmt.Errorf("%w: guest refused the host: %v", ErrAuth, err)
		}
		return fmt.Errorf("wait for guest acceptance: %w", err)
	}
	if b[0] != ackByte {
		return fmt.Errorf("wait for guest acceptance: unexpected byte %#x", b[0])
	}
	return nil
}

// writeHeader writes a stream header: kind, then for stdio streams the id
// length and the id.
func writeHeader(w io.Writer, kind StreamKind, id string) error {
	hdr := []byte{byte(kind)}
	if kind.isStdio() {
		if len(id) == 0 || len(id) > MaxProcessIDLen {
			return fmt.Errorf("process id length %d out of range 1-%d", len(id), MaxProcessIDLen)
		}
		hdr = append(hdr, byte(len(id)))
		hdr = append(hdr, id...)
	}
	_, err := w.Write(hdr)
	return err
}

// readHeader is the guest side of writeHeader. Its reads are bounded by
// construction: at most 2+MaxProcessIDLen bytes.
func readHeader(r io.Reader) (StreamKind, string, error) {
	var b [2]byte
	if _, err := io.ReadFull(r, b[:1]); err != nil {
		return 0, "", err
	}
	kind := StreamKind(b[0])
	switch kind {
	case KindControl:
		return kind, "", nil
	case KindPort:
		var p [2]byte
		if _, err := io.ReadFull(r, p[:]); err != nil {
			return 0, "", err
		}
		port := uint16(p[0])<<8 | uint16(p[1])
		if port == 0 {
			return 0, "", errors.New("port 0")
		}
		return kind, strconv.Itoa(int(port)), nil
	}
	if !kind.isStdio() {
		return 0, "", fmt.Errorf("unknown stream kind %d", b[0])
	}
	if _, err := io.ReadFull(r, b[1:2]); err != nil {
		return 0, "", err
	}
	n := int(b[1])
	if n == 0 || n > MaxProcessIDLen {
		return 0, "", fmt.Errorf("process id length %d out of range", n)
	}
	id := make([]byte, n)
	if _, err := io.ReadFull(r, id); err != nil {
		return 0, "", err
	}
	return kind, string(id), nil
}

// Stream is one multiplexed stream. Close only ends this side's writing
// (the peer reads EOF); the stream is released once both sides closed.
type Stream struct {
	*yamux.Stream
}

// CloseWrite ends this side's writing; reads continue until the peer closes.
func (s Stream) CloseWrite() error { return s.Stream.Close() }

var _ net.Conn = Stream{}
