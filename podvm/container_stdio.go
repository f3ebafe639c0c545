package podvm

import (
	"context"
	"fmt"

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

// attach hands the streams to p.
func (s *stdio) attach(p *Process, stdin, stdout, stderr bool) {
	if stdin {
		p.Stdin = stdinWriter{s.in}
	}
	if stdout {
		p.Stdout = s.out
	}
	if stderr {
		p.Stderr = s.err
	}
}
