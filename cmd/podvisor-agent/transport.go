package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/vsock"
)

// Transport names as found in the guest.
const (
	// serialPortName is the virtio-serial port QEMU exposes to the agent.
	serialPortName = "io.podvisor.agent"
	// vsockPort is the port the agent listens on under Cloud Hypervisor.
	vsockPort = 1024
)

// transport yields raw connections from the host, one session at a time.
type transport interface {
	// Next waits for the host's next connection.
	Next(ctx context.Context) (net.Conn, error)
	String() string
}

// findTransport picks the virtio-serial port when the VMM offers one, else
// vsock: the guest learns which VMM runs it from the devices it sees, not
// from anything the host must keep in sync.
func findTransport() (transport, error) {
	if dev, err := findSerialPort(serialPortName); err == nil {
		return &serialTransport{dev: dev}, nil
	}
	l, err := vsock.Listen(vsockPort, nil)
	if err != nil {
		return nil, fmt.Errorf("no virtio-serial port %q and no vsock: %w", serialPortName, err)
	}
	return &vsockTransport{l: l}, nil
}

// findSerialPort maps a virtio-serial port name to its device node via
// sysfs; devtmpfs creates the node itself.
func findSerialPort(name string) (string, error) {
	ports, _ := filepath.Glob("/sys/class/virtio-ports/vport*")
	for _, p := range ports {
		b, err := os.ReadFile(filepath.Join(p, "name"))
		if err == nil && strings.TrimSpace(string(b)) == name {
			return "/dev/" + filepath.Base(p), nil
		}
	}
	return "", fmt.Errorf("virtio-serial port %q not found", name)
}

// serialTransport is a virtio-serial port: one byte stream with no notion
// of connections. The agent opens the port once and keeps it open: closing
// and re-opening it while the host reconnects can stall the host's new
// connection inside the VMM. A session ends when the host disconnects (reads
// return EOF); the next session starts on the same descriptor, and the
// channel's preamble skips whatever the previous host left unread.
type serialTransport struct {
	dev string
	f   *os.File
}

func (t *serialTransport) String() string { return "virtio-serial " + t.dev }

func (t *serialTransport) Next(ctx context.Context) (net.Conn, error) {
	if t.f == nil {
		f, err := os.OpenFile(t.dev, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		t.f = f
	}
	return &sessionConn{f: t.f}, nil
}

// sessionConn is one session's view of the long-lived port. Close ends the
// view, not the port: it interrupts reads and writes in flight with a past
// deadline and waits for them, so that no goroutine of an old session can
// steal bytes from the next one.
type sessionConn struct {
	f *os.File

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup
}

func (c *sessionConn) begin() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.inflight.Add(1)
	return true
}

func (c *sessionConn) Read(b []byte) (int, error) {
	if !c.begin() {
		return 0, net.ErrClosed
	}
	defer c.inflight.Done()
	return c.f.Read(b)
}

func (c *sessionConn) Write(b []byte) (int, error) {
	if !c.begin() {
		return 0, net.ErrClosed
	}
	defer c.inflight.Done()
	return c.f.Write(b)
}

func (c *sessionConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	if err := c.f.SetDeadline(time.Now()); err != nil {
		return fmt.Errorf("interrupt port I/O: %w", err)
	}
	c.inflight.Wait()
	return c.f.SetDeadline(time.Time{})
}

func (c *sessionConn) SetDeadline(t time.Time) error      { return c.f.SetDeadline(t) }
func (c *sessionConn) SetReadDeadline(t time.Time) error  { return c.f.SetReadDeadline(t) }
func (c *sessionConn) SetWriteDeadline(t time.Time) error { return c.f.SetWriteDeadline(t) }
func (c *sessionConn) LocalAddr() net.Addr                { return portAddr(c.f.Name()) }
func (c *sessionConn) RemoteAddr() net.Addr               { return portAddr("host") }

type portAddr string

func (a portAddr) Network() string { return "virtio-serial" }
func (a portAddr) String() string  { return string(a) }

// vsockTransport accepts connections on the agent's vsock port (Cloud
// Hypervisor's hybrid vsock forwards the host's CONNECT here).
type vsockTransport struct{ l *vsock.Listener }

func (t *vsockTransport) String() string { return fmt.Sprintf("vsock port %d", vsockPort) }

func (t *vsockTransport) Next(ctx context.Context) (net.Conn, error) {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := t.l.Accept()
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-ctx.Done():
		t.l.SetDeadline(time.Now())
		r := <-ch
		t.l.SetDeadline(time.Time{})
		if r.c != nil {
			r.c.Close()
		}
		return nil, errors.Join(ctx.Err(), r.err)
	}
}
