package chtest

import (
	"context"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// maxFDs is how many fds one read accepts, as many as any request here needs.
const maxFDs = 16

// fdListener hands out connections that keep the fds arriving with their
// bytes (SCM_RIGHTS), for the handler of the request they came with.
type fdListener struct{ *net.UnixListener }

func (l fdListener) Accept() (net.Conn, error) {
	c, err := l.AcceptUnix()
	if err != nil {
		return nil, err
	}
	return &fdConn{UnixConn: c}, nil
}

type fdConn struct {
	*net.UnixConn
	mu    sync.Mutex
	files []*os.File
	trunc bool // some fds were dropped by the kernel (too many)
}

func (c *fdConn) Read(p []byte) (int, error) {
	oob := make([]byte, unix.CmsgSpace(maxFDs*4))
	n, oobn, flags, _, err := c.ReadMsgUnix(p, oob)
	if n < 0 { // recvmsg's -1 on error; io.Reader callers want 0
		n = 0
	}
	if oobn > 0 || flags&unix.MSG_CTRUNC != 0 {
		c.keep(oob[:oobn], flags&unix.MSG_CTRUNC != 0)
	}
	return n, err
}

func (c *fdConn) keep(oob []byte, trunc bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.trunc = c.trunc || trunc
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			unix.CloseOnExec(fd)
			c.files = append(c.files, os.NewFile(uintptr(fd), "scm-rights"))
		}
	}
}

// take returns the fds received so far; the caller owns them.
func (c *fdConn) take() ([]*os.File, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	files, trunc := c.files, c.trunc
	c.files, c.trunc = nil, false
	return files, trunc
}

func (c *fdConn) Close() error {
	files, _ := c.take()
	closeAll(files)
	return c.UnixConn.Close()
}

type connKey struct{}

func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

func requestFDs(ctx context.Context) ([]*os.File, bool) {
	c, ok := ctx.Value(connKey{}).(*fdConn)
	if !ok {
		return nil, false
	}
	return c.take()
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// fdKind names the file type behind f, proving the fd is open.
func fdKind(f *os.File) (string, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "fifo", nil
	case unix.S_IFCHR:
		return "chr", nil
	case unix.S_IFREG:
		return "reg", nil
	case unix.S_IFSOCK:
		return "sock", nil
	case unix.S_IFDIR:
		return "dir", nil
	default:
		return "other", nil
	}
}
