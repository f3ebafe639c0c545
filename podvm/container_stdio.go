package podvm

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/podvisor/podvisor/podvm/channel"
)

// stdio is the host's side of the stdio streams of one guest process,
// opened before the agent is asked to start it so that no output is lost.
type stdio struct {
	in, out, err channel.Stream
	opened       []channel.Stream
}

// openStdio opens the requested streams for process id. On error, the
// streams already opened are closed.
func (v *VM) openStdio(ctx context.Context, id string, stdin, stdout, stderr bool) (_ *stdio, retErr error) {
	s := &stdio{}
	defer func() {
		if retErr != nil {
			s.close()
		}
	}()
	for _, w := range []struct {
		want bool
		kind channel.StreamKind
		dst  *channel.Stream
	}{
		{stdin, channel.KindStdin, &s.in},
		{stdout, channel.KindStdout, &s.out},
		{stderr, channel.KindStderr, &s.err},
	} {
		if !w.want {
			continue
		}
		st, err := v.agent.session.OpenStdio(ctx, id, w.kind)
		if err != nil {
			return nil, fmt.Errorf("process %q: %w", id, err)
		}
		*w.dst = st
		s.opened = append(s.opened, st)
	}
	return s, nil
}

// close closes every opened stream: the agent refused the process.
func (s *stdio) close() {
	for _, st := range s.opened {
		st.Close()
	}
}

// attach hands the streams to p. acks: the agent said it reads
// acknowledgements of the output (an older agent does not).
func (s *stdio) attach(p *Process, stdin, stdout, stderr, acks bool) {
	if stdin {
		p.Stdin = stdinWriter{s.in}
	}
	if stdout {
		p.Stdout = outputReader(s.out, acks)
	}
	if stderr {
		p.Stderr = outputReader(s.err, acks)
	}
}

func outputReader(s channel.Stream, acks bool) io.ReadCloser {
	if !acks {
		return s
	}
	return &ackedOutput{s: s}
}

// ackSize is the size of an acknowledgement: the number of bytes read from
// the stream so far, big-endian (see agentpb.AttachStdioRequest).
const ackSize = 8

// ackedOutput is an output stream whose reads are acknowledged to the agent,
// which keeps output until then: what this host had not read when it went
// away, the agent sends again to the next host (see VM.Process).
type ackedOutput struct {
	s    io.ReadWriteCloser
	read uint64
	ack  [ackSize]byte
}

// Read returns bytes only once the agent has been told they arrived. Bytes
// whose acknowledgement fails are not returned: the agent still has them
// and sends them to the next host, which would otherwise get them twice.
func (o *ackedOutput) Read(b []byte) (int, error) {
	n, err := o.s.Read(b)
	if n == 0 {
		return 0, err
	}
	binary.BigEndian.PutUint64(o.ack[:], o.read+uint64(n))
	if _, werr := o.s.Write(o.ack[:]); werr != nil {
		return 0, fmt.Errorf("acknowledge output: %w", werr)
	}
	o.read += uint64(n)
	return n, err
}

// Close ends this side of the stream: the agent stops expecting
// acknowledgements.
func (o *ackedOutput) Close() error { return o.s.Close() }
