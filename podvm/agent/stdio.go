package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// StreamKind names a stdio stream of a process.
type StreamKind uint8

// The stdio streams of a process.
const (
	StreamStdin StreamKind = iota
	StreamStdout
	StreamStderr
)

func (k StreamKind) String() string {
	switch k {
	case StreamStdin:
		return "stdin"
	case StreamStdout:
		return "stdout"
	case StreamStderr:
		return "stderr"
	}
	return fmt.Sprintf("StreamKind(%d)", uint8(k))
}

// StdioBroker hands out the stdio streams the host opened on the guest
// channel for a process.
type StdioBroker interface {
	// Take returns the stream the host opened for process id and kind,
	// waiting until ctx ends. Each stream is taken at most once; the service
	// closes it when done with it: when the process is done, when the host
	// closed an output stream it acknowledges, when another stream replaced
	// it, or at the latest when the process is removed.
	//
	// Read must return io.EOF only when the host half-closed the stream:
	// the service then closes the process's stdin. A stream that broke
	// because the host went away (its session ended) must fail with any
	// other error, so that the process keeps its stdin open, and its
	// output, for the next host (see AttachStdio).
	//
	// Optional methods the service uses when the stream has them:
	// CloseWrite() error half-closes it at the end of an output, and
	// SetDeadline(time.Time) error is set in the past before Close, to
	// interrupt a Read or Write still pending (a yamux stream's Close is a
	// half-close that leaves a pending Read blocked until the host closes
	// its end).
	Take(ctx context.Context, id string, kind StreamKind) (io.ReadWriteCloser, error)
}

// stream is a taken stdio stream, closed exactly once however many of the
// process's goroutines finish with it.
type stream struct {
	rwc       io.ReadWriteCloser
	closeOnce sync.Once
}

// closeWrite tells the host this output has ended, half-closing the stream
// when it can and closing it otherwise.
func (s *stream) closeWrite() {
	if cw, ok := s.rwc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	s.close()
}

func (s *stream) close() {
	s.closeOnce.Do(func() {
		if d, ok := s.rwc.(interface{ SetDeadline(time.Time) error }); ok {
			_ = d.SetDeadline(time.Unix(1, 0))
		}
		_ = s.rwc.Close()
	})
}

// streams are the stdio streams of one process; nil for those not requested.
type streams struct {
	stdin, stdout, stderr *stream
	// acks: the host acknowledges the output it reads (see output).
	acks bool
}

// of returns the stream of kind; nil when not requested.
func (s streams) of(kind StreamKind) *stream {
	switch kind {
	case StreamStdin:
		return s.stdin
	case StreamStdout:
		return s.stdout
	case StreamStderr:
		return s.stderr
	}
	return nil
}

func (s streams) closeAll() {
	for _, st := range []*stream{s.stdin, s.stdout, s.stderr} {
		if st != nil {
			st.close()
		}
	}
}

// stdioRequest is a request that names a process and the stdio streams the
// host opened for it: StartProcess, CreateContainer, ExecProcess and
// AttachStdio.
type stdioRequest interface {
	GetId() string
	GetStdin() bool
	GetStdout() bool
	GetStderr() bool
	GetAckOutput() bool
}

var (
	_ stdioRequest = (*agentpb.StartProcessRequest)(nil)
	_ stdioRequest = (*agentpb.CreateContainerRequest)(nil)
	_ stdioRequest = (*agentpb.ExecProcessRequest)(nil)
	_ stdioRequest = (*agentpb.AttachStdioRequest)(nil)
)

// takeStreams takes the streams req asks for, all within timeout.
func takeStreams(ctx context.Context, b StdioBroker, req stdioRequest, timeout time.Duration) (_ streams, retErr error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st := streams{acks: req.GetAckOutput()}
	defer func() {
		if retErr != nil {
			st.closeAll()
		}
	}()
	wanted := []struct {
		want bool
		kind StreamKind
		dst  **stream
	}{
		{req.GetStdin(), StreamStdin, &st.stdin},
		{req.GetStdout(), StreamStdout, &st.stdout},
		{req.GetStderr(), StreamStderr, &st.stderr},
	}
	for _, w := range wanted {
		if !w.want {
			continue
		}
		rwc, err := b.Take(ctx, req.GetId(), w.kind)
		if err == nil && rwc == nil {
			err = errors.New("broker returned no stream")
		}
		if err != nil {
			return streams{}, streamError(ctx, w.kind, timeout, err)
		}
		*w.dst = &stream{rwc: rwc}
	}
	return st, nil
}

// streamError says why a stream could not be taken. Running out of time
// means the host did not open the stream first, as the protocol requires.
func streamError(ctx context.Context, kind StreamKind, timeout time.Duration, err error) error {
	if errors.Is(err, context.DeadlineExceeded) && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s: stream not opened by the host within %v: %w", kind, timeout, ErrFailedPrecondition)
	}
	return fmt.Errorf("%s: take stream: %w", kind, err)
}
