// Package tcpbench measures one-way TCP throughput between two endpoints,
// like a minimal iperf. The e2e benchmarks run its command (cmd/tcpbench,
// built static) inside pod containers and call the package directly on the
// host, so both ends speak the same protocol.
//
// The protocol: a client connects and sends data until it has sent its
// byte budget or its time is up, then half-closes the connection. The server
// counts what arrives until EOF and answers with one line, "<bytes>\n". The
// client's elapsed time runs from the connect to that answer, so data still
// in flight when the client stops writing is part of the measurement.
package tcpbench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// bufSize is the size of each write and read.
const bufSize = 128 << 10

// Result is one transfer as the client saw it.
type Result struct {
	// Bytes is what the server received.
	Bytes int64 `json:"bytes"`
	// Seconds is the client's elapsed time from connect to the server's
	// answer.
	Seconds float64 `json:"seconds"`
}

// MBps is the throughput in megabytes (10^6 bytes) per second.
func (r Result) MBps() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.Bytes) / 1e6 / r.Seconds
}

// Serve accepts connections on ln until it is closed and counts each
// client's data. It returns nil once ln is closed.
func Serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			_ = serveConn(c)
		}()
	}
}

func serveConn(c net.Conn) error {
	buf := make([]byte, bufSize)
	var n int64
	for {
		m, err := c.Read(buf)
		n += int64(m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(c, "%d\n", n)
	return err
}

// Send connects to addr and sends up to maxBytes for at most maxTime.
func Send(ctx context.Context, addr string, maxBytes int64, maxTime time.Duration) (Result, error) {
	var d net.Dialer
	start := time.Now()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return Result{}, fmt.Errorf("%s: not a TCP connection", addr)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	buf := make([]byte, bufSize)
	for i := range buf {
		buf[i] = byte(i)
	}
	stop := start.Add(maxTime)
	var sent int64
	for sent < maxBytes && time.Now().Before(stop) {
		chunk := buf
		if rest := maxBytes - sent; rest < int64(len(chunk)) {
			chunk = chunk[:rest]
		}
		m, err := tc.Write(chunk)
		sent += int64(m)
		if err != nil {
			return Result{}, fmt.Errorf("send to %s after %d bytes: %w", addr, sent, err)
		}
	}
	if err := tc.CloseWrite(); err != nil {
		return Result{}, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return Result{}, fmt.Errorf("answer from %s: %w", addr, err)
	}
	elapsed := time.Since(start)
	got, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	if err != nil {
		return Result{}, fmt.Errorf("answer from %s: %q: %w", addr, line, err)
	}
	if got != sent {
		return Result{}, fmt.Errorf("%s received %d bytes of %d sent", addr, got, sent)
	}
	return Result{Bytes: got, Seconds: elapsed.Seconds()}, nil
}
