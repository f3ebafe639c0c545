package channel

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type pair struct {
	host, guest Identity
}

func newPair(t *testing.T) pair {
	t.Helper()
	h, err := NewIdentity("host")
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewIdentity("guest")
	if err != nil {
		t.Fatal(err)
	}
	return pair{h, g}
}

// connectBoth runs both handshakes over an in-memory pipe.
func connectBoth(t *testing.T, hostSelf Identity, guestPin []byte, guestSelf Identity, hostPin []byte) (*HostSession, *GuestSession, error, error) {
	t.Helper()
	a, b := socketPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		g   *GuestSession
		err error
	}
	ch := make(chan res, 1)
	go func() {
		g, err := Accept(ctx, b, guestSelf, hostPin, Options{HandshakeTimeout: 5 * time.Second})
		ch <- res{g, err}
	}()
	h, herr := Connect(ctx, a, hostSelf, guestPin, Options{HandshakeTimeout: 5 * time.Second})
	if herr != nil {
		a.Close()
	}
	r := <-ch
	if r.err != nil {
		b.Close()
	}
	if h != nil {
		t.Cleanup(func() { h.Close() })
	}
	if r.g != nil {
		t.Cleanup(func() { r.g.Close() })
	}
	return h, r.g, herr, r.err
}

// socketPair returns two connected unix stream sockets: buffered like the
// real transports, unlike net.Pipe.
func socketPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return conn(fds[0]), conn(fds[1])
}

func TestHandshakeAuthentication(t *testing.T) {
	p := newPair(t)
	impostor := newPair(t)
	tests := []struct {
		name               string
		hostSelf, guestSel Identity
		guestPin, hostPin  []byte
		wantHostErr        bool
		wantGuestErr       bool
	}{
		{"matching keys", p.host, p.guest, p.guest.CertDER, p.host.CertDER, false, false},
		{"guest with wrong key", p.host, impostor.guest, p.guest.CertDER, p.host.CertDER, true, true},
		{"host with wrong key", impostor.host, p.guest, p.guest.CertDER, p.host.CertDER, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, g, herr, gerr := connectBoth(t, tc.hostSelf, tc.guestPin, tc.guestSel, tc.hostPin)
			if (herr != nil) != tc.wantHostErr {
				t.Fatalf("host error = %v, want error %v", herr, tc.wantHostErr)
			}
			if (gerr != nil) != tc.wantGuestErr {
				t.Fatalf("guest error = %v, want error %v", gerr, tc.wantGuestErr)
			}
			if herr != nil && !errors.Is(herr, ErrAuth) {
				t.Errorf("host error %v is not ErrAuth", herr)
			}
			if gerr != nil && !errors.Is(gerr, ErrAuth) {
				t.Errorf("guest error %v is not ErrAuth", gerr)
			}
			if herr == nil && (h == nil || g == nil) {
				t.Fatal("no sessions")
			}
		})
	}
}

func TestHandshakeRejectsGarbageAndSilence(t *testing.T) {
	p := newPair(t)
	a, b := net.Pipe()
	defer b.Close()
	go func() {
		b.Write(bytes.Repeat([]byte("not tls\n"), 100))
	}()
	_, err := Connect(context.Background(), a, p.host, p.guest.CertDER, Options{HandshakeTimeout: 2 * time.Second})
	if err == nil {
		t.Fatal("handshake with garbage succeeded")
	}

	// A guest that never answers fails the handshake within its timeout.
	c, d := net.Pipe()
	defer d.Close()
	go io.Copy(io.Discard, d)
	start := time.Now()
	_, err = Connect(context.Background(), c, p.host, p.guest.CertDER, Options{HandshakeTimeout: 300 * time.Millisecond})
	if err == nil {
		t.Fatal("handshake with silent peer succeeded")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("handshake took %v despite its timeout", time.Since(start))
	}
}

func TestControlAndStdioStreams(t *testing.T) {
	p := newPair(t)
	h, g, herr, gerr := connectBoth(t, p.host, p.guest.CertDER, p.guest, p.host.CertDER)
	if herr != nil || gerr != nil {
		t.Fatal(herr, gerr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Control stream: echoed by a guest-side listener.
	l := g.Listener()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	c, err := h.DialControl(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("control echo = %q, %v", buf, err)
	}
	c.Close()

	// Stdio streams opened before the process claims them; half-close
	// delivers EOF while the other direction keeps working.
	out, err := h.OpenStdio(ctx, "proc-1", KindStdout)
	if err != nil {
		t.Fatal(err)
	}
	in, err := h.OpenStdio(ctx, "proc-1", KindStdin)
	if err != nil {
		t.Fatal(err)
	}
	gin, err := g.Take(ctx, "proc-1", KindStdin)
	if err != nil {
		t.Fatal(err)
	}
	gout, err := g.Take(ctx, "proc-1", KindStdout)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		in.Write([]byte("hello"))
		in.CloseWrite()
	}()
	got, err := io.ReadAll(gin)
	if err != nil || string(got) != "hello" {
		t.Fatalf("stdin = %q, %v", got, err)
	}
	go func() {
		gout.Write([]byte("world"))
		gout.CloseWrite()
	}()
	got, err = io.ReadAll(out)
	if err != nil || string(got) != "world" {
		t.Fatalf("stdout = %q, %v", got, err)
	}

	// Take waits for a stream that arrives later.
	done := make(chan error, 1)
	go func() {
		_, err := g.Take(ctx, "late", KindStderr)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if _, err := h.OpenStdio(ctx, "late", KindStderr); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Take gives up when its context ends.
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if _, err := g.Take(short, "never", KindStdin); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Take of a missing stream = %v", err)
	}
}

func TestOpenStdioValidatesID(t *testing.T) {
	p := newPair(t)
	h, _, herr, gerr := connectBoth(t, p.host, p.guest.CertDER, p.guest, p.host.CertDER)
	if herr != nil || gerr != nil {
		t.Fatal(herr, gerr)
	}
	ctx := context.Background()
	if _, err := h.OpenStdio(ctx, "", KindStdin); err == nil {
		t.Error("empty id accepted")
	}
	if _, err := h.OpenStdio(ctx, string(bytes.Repeat([]byte("x"), MaxProcessIDLen+1)), KindStdin); err == nil {
		t.Error("oversized id accepted")
	}
	if _, err := h.OpenStdio(ctx, "p", KindControl); err == nil {
		t.Error("control kind accepted as stdio")
	}
}

func TestReadHeader(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		kind    StreamKind
		id      string
		wantErr bool
	}{
		{"control", []byte{'C'}, KindControl, "", false},
		{"stdout", append([]byte{'1', 3}, "abc"...), KindStdout, "abc", false},
		{"unknown kind", []byte{'Z'}, 0, "", true},
		{"zero length id", []byte{'0', 0}, 0, "", true},
		{"oversized id", []byte{'0', MaxProcessIDLen + 1}, 0, "", true},
		{"truncated id", []byte{'2', 5, 'a'}, 0, "", true},
		{"empty", nil, 0, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kind, id, err := readHeader(bytes.NewReader(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && (kind != tc.kind || id != tc.id) {
				t.Fatalf("got %v %q", kind, id)
			}
		})
	}
}

func TestSessionEndsWhenTransportDies(t *testing.T) {
	p := newPair(t)
	a, b := socketPair(t)
	ctx := context.Background()
	gch := make(chan *GuestSession, 1)
	go func() {
		g, _ := Accept(ctx, b, p.guest, p.host.CertDER, Options{})
		gch <- g
	}()
	h, err := Connect(ctx, a, p.host, p.guest.CertDER, Options{KeepAlive: 100 * time.Millisecond, WriteTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	g := <-gch
	b.Close() // the guest's transport vanishes
	select {
	case <-h.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("host session did not notice the dead transport")
	}
	if _, err := h.DialControl(ctx, ""); err == nil {
		t.Fatal("opening a stream on a dead session succeeded")
	}
	g.Close()
}

func TestIdentityPEMRoundTrip(t *testing.T) {
	id, err := NewIdentity("x")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := id.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseIdentityPEM(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.CertDER, id.CertDER) || !bytes.Equal(back.Key, id.Key) {
		t.Fatal("round trip changed the identity")
	}
	other, _ := NewIdentity("y")
	_, otherKey, _ := other.MarshalPEM()
	if _, err := ParseIdentityPEM(certPEM, otherKey); err == nil {
		t.Fatal("mismatched key accepted")
	}
	if _, err := ParseIdentityPEM([]byte("junk"), keyPEM); err == nil {
		t.Fatal("junk certificate accepted")
	}
}

// TestStaleBytesBeforeSession models a virtio-serial port on which an earlier
// host left bytes the guest never read, including a partial preamble: the
// next session must still come up.
func TestStaleBytesBeforeSession(t *testing.T) {
	p := newPair(t)
	a, b := socketPair(t)
	stale := append([]byte("leftover TLS records \x00\x00"), preamble[:7]...)
	if _, err := a.Write(stale); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gch := make(chan error, 1)
	go func() {
		g, err := Accept(ctx, b, p.guest, p.host.CertDER, Options{})
		if g != nil {
			defer g.Close()
		}
		gch <- err
	}()
	h, err := Connect(ctx, a, p.host, p.guest.CertDER, Options{})
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if err := <-gch; err != nil {
		t.Fatal(err)
	}
}

func TestSkipToPreambleGivesUp(t *testing.T) {
	a, b := socketPair(t)
	defer a.Close()
	go a.Write(bytes.Repeat([]byte{'x'}, 4096))
	err := skipToPreamble(context.Background(), b, 200*time.Millisecond)
	if err == nil {
		t.Fatal("found a preamble in garbage")
	}
}

func TestPortStreams(t *testing.T) {
	p := newPair(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	echoPort := uint16(l.Addr().(*net.TCPAddr).Port)

	a, b := socketPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var dialed []uint16
	gch := make(chan *GuestSession, 1)
	go func() {
		g, _ := Accept(ctx, b, p.guest, p.host.CertDER, Options{DialPort: func(ctx context.Context, port uint16) (net.Conn, error) {
			dialed = append(dialed, port)
			var d net.Dialer
			return d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
		}})
		gch <- g
	}()
	h, err := Connect(ctx, a, p.host, p.guest.CertDER, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	g := <-gch
	defer g.Close()

	st, err := h.OpenPort(ctx, echoPort)
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("through the guest"))
	st.CloseWrite()
	got, err := io.ReadAll(st)
	if err != nil || string(got) != "through the guest" {
		t.Fatalf("echo = %q, %v", got, err)
	}
	if len(dialed) != 1 || dialed[0] != echoPort {
		t.Fatalf("dialed %v, want [%d]", dialed, echoPort)
	}

	// A port nothing listens on: the stream just ends.
	l2, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := uint16(l2.Addr().(*net.TCPAddr).Port)
	l2.Close()
	st2, err := h.OpenPort(ctx, closedPort)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(st2); len(b) != 0 {
		t.Fatalf("read %q from a refused port", b)
	}
	if _, err := h.OpenPort(ctx, 0); err == nil {
		t.Fatal("port 0 accepted")
	}
}
