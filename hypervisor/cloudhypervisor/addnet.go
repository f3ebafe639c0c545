package cloudhypervisor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podvisor/podvisor/hypervisor/cloudhypervisor/chapi"
)

// AddNet sends vm.add-net with the tap fds attached as SCM_RIGHTS. The spec
// has no field for fds and net/http cannot attach ancillary data, so this one
// request is written by hand on a raw unix connection; the generated code
// still builds the request and parses the reply.
func (a *apiClient) AddNet(ctx context.Context, cfg chapi.NetConfig, taps []*os.File) (retErr error) {
	if len(taps) == 0 {
		return errors.New("vm.add-net: no tap fds")
	}
	// Cloud Hypervisor derives the queue pairs from the fds and rejects a
	// num_queues that disagrees.
	queues := 2 * len(taps)
	cfg.NumQueues = &queues

	req, wire, err := encodeAddNet(cfg)
	if err != nil {
		return fmt.Errorf("vm.add-net: %w", err)
	}

	fds, err := dupFDs(taps)
	if err != nil {
		return fmt.Errorf("vm.add-net: %w", err)
	}
	defer closeFDs(fds)

	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", a.socket)
	if err != nil {
		return fmt.Errorf("vm.add-net: %w", err)
	}
	conn := c.(*net.UnixConn)
	defer conn.Close()
	stop := bindDeadline(ctx, conn)
	defer func() {
		stop()
		if cerr := contextErr(ctx, retErr); cerr != nil {
			retErr = fmt.Errorf("%w (%w)", retErr, cerr)
		}
	}()

	if err := writeWithRights(conn, wire, unix.UnixRights(fds...)); err != nil {
		return fmt.Errorf("vm.add-net: send: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(io.LimitReader(conn, maxResponseBytes)), req)
	if err != nil {
		return fmt.Errorf("vm.add-net: read reply: %w", err)
	}
	parsed, err := chapi.ParsePutVmAddNetResponse(resp)
	if err != nil {
		return fmt.Errorf("vm.add-net: parse reply: %w", err)
	}
	return checkStatus("vm.add-net", resp, parsed.Body)
}

// encodeAddNet builds the request with the generated code and serialises it.
// Request.Write emits Content-Length for the in-memory body; the VMM's HTTP
// parser does not take chunked bodies.
func encodeAddNet(cfg chapi.NetConfig) (*http.Request, []byte, error) {
	req, err := chapi.NewPutVmAddNetRequest(baseURL, cfg)
	if err != nil {
		return nil, nil, err
	}
	var wire bytes.Buffer
	if err := req.Write(&wire); err != nil {
		return nil, nil, fmt.Errorf("encode request: %w", err)
	}
	return req, wire.Bytes(), nil
}

// writeWithRights sends b with the rights attached to its first byte, which
// is where the VMM's HTTP server collects them for the request.
func writeWithRights(conn *net.UnixConn, b, rights []byte) error {
	n, _, err := conn.WriteMsgUnix(b, rights, nil)
	if err != nil {
		return err
	}
	if n < len(b) {
		_, err = conn.Write(b[n:])
	}
	return err
}

// dupFDs duplicates the files' descriptors through SyscallConn: os.File.Fd
// would switch a non-blocking tap to blocking mode, a flag the VMM's copy
// shares with ours.
func dupFDs(files []*os.File) (_ []int, retErr error) {
	var fds []int
	defer func() {
		if retErr != nil {
			closeFDs(fds)
		}
	}()
	for _, f := range files {
		if f == nil {
			return nil, errors.New("nil tap file")
		}
		rc, err := f.SyscallConn()
		if err != nil {
			return nil, fmt.Errorf("tap %s: %w", f.Name(), err)
		}
		var dupErr error
		err = rc.Control(func(fd uintptr) {
			var nfd int
			nfd, dupErr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
			if dupErr == nil {
				fds = append(fds, nfd)
			}
		})
		if err = errors.Join(err, dupErr); err != nil {
			return nil, fmt.Errorf("tap %s: dup: %w", f.Name(), err)
		}
	}
	return fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}

// contextErr returns ctx's error when it explains the I/O error err: conn
// deadlines taken from ctx fire a moment before ctx itself reports them.
func contextErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if dl, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// aLongTimeAgo is a deadline that has passed: setting it unblocks any I/O.
var aLongTimeAgo = time.Unix(1, 0)

// bindDeadline applies ctx's deadline to conn and unblocks conn's I/O when
// ctx is cancelled. The returned stop reports false when cancellation already
// fired, in which case conn's deadline is in the past.
func bindDeadline(ctx context.Context, conn net.Conn) (stop func() bool) {
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	return context.AfterFunc(ctx, func() { _ = conn.SetDeadline(aLongTimeAgo) })
}
