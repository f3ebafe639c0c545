package cloudhypervisor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// AgentVsockPort is the guest vsock port the agent listens on.
const AgentVsockPort = 1024

// guestCID is the guest's vsock context ID; 0-2 are reserved, and every VM
// has its own vsock device, so all guests can share it.
const guestCID = 3

// handshakeTimeout bounds the CONNECT/OK exchange when ctx has no deadline
// of its own: the other end is a guest, which may never answer.
const handshakeTimeout = 10 * time.Second

// maxHandshakeLine bounds the VMM's "OK <port>\n" reply (at most 14 bytes);
// anything longer is not a reply.
const maxHandshakeLine = 32

// dialHybridVsock opens a stream to guest port over Cloud Hypervisor's hybrid
// vsock: connect to the unix socket, send "CONNECT <port>\n" and wait for
// "OK <host port>\n", which the VMM sends once the guest accepted. Bytes the
// guest sent right behind the reply are kept for the caller.
func dialHybridVsock(ctx context.Context, socket string, port uint32) (_ net.Conn, retErr error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, fmt.Errorf("dial vsock socket: %w", err)
	}
	defer func() {
		if retErr != nil {
			conn.Close()
		}
	}()

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, handshakeTimeout)
		defer cancel()
	}
	stop := bindDeadline(ctx, conn)
	if _, err := fmt.Fprintf(conn, "CONNECT %d\n", port); err != nil {
		stop()
		return nil, fmt.Errorf("vsock CONNECT %d: %w", port, err)
	}
	rest, err := readConnectReply(conn)
	if !stop() {
		// Cancelled at the last moment: conn's deadline is in the past.
		return nil, fmt.Errorf("vsock CONNECT %d: %w", port, ctx.Err())
	}
	if cerr := contextErr(ctx, err); cerr != nil {
		return nil, fmt.Errorf("vsock CONNECT %d: %w", port, cerr)
	}
	if err != nil {
		return nil, fmt.Errorf("vsock CONNECT %d: %w", port, err)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("vsock CONNECT %d: %w", port, err)
	}
	if len(rest) == 0 {
		return conn, nil
	}
	return &prefixConn{Conn: conn, pre: rest}, nil
}

// errConnectRefused is what the VMM's closing the connection without a reply
// means: nothing listens on that guest port (yet).
var errConnectRefused = errors.New("connection closed before OK: is the guest listening?")

// readConnectReply reads the "OK <n>\n" line and returns any bytes that
// arrived after it.
func readConnectReply(conn net.Conn) ([]byte, error) {
	br := bufio.NewReaderSize(conn, maxHandshakeLine)
	line, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, fmt.Errorf("reply longer than %d bytes", maxHandshakeLine)
	case errors.Is(err, io.EOF):
		return nil, errConnectRefused
	case err != nil:
		return nil, err
	}
	if err := parseConnectReply(line); err != nil {
		return nil, err
	}
	rest, _ := br.Peek(br.Buffered())
	return bytes.Clone(rest), nil
}

func parseConnectReply(line []byte) error {
	fields := bytes.Fields(line)
	if len(fields) != 2 || string(fields[0]) != "OK" {
		return fmt.Errorf("unexpected reply %q", line)
	}
	if _, err := strconv.ParseUint(string(fields[1]), 10, 32); err != nil {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// prefixConn is a connection whose first bytes were already read off the
// socket while looking for the end of the handshake.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
