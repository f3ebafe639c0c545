package agent

import (
	"context"
	"fmt"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// AttachStdio takes the stdio streams the host opened for a process it
// already runs, running or exited, and attaches them in place of the
// process's own: a host that reconnected after a restart gets the output
// written while it was away, then the live output, and feeds stdin again.
func (s *Service) AttachStdio(ctx context.Context, req *agentpb.AttachStdioRequest) (*agentpb.AttachStdioResponse, error) {
	resp, err := s.attachStdio(ctx, req)
	if err != nil {
		klog.V(2).InfoS("AttachStdio failed", "processID", req.GetId(), "err", err)
		return nil, toStatus(fmt.Errorf("attach stdio: %w", err))
	}
	klog.InfoS("Attached stdio", "processID", req.GetId(),
		"stdin", req.GetStdin(), "stdout", req.GetStdout(), "stderr", req.GetStderr())
	return resp, nil
}

func (s *Service) attachStdio(ctx context.Context, req *agentpb.AttachStdioRequest) (*agentpb.AttachStdioResponse, error) {
	if err := validateID(req.GetId()); err != nil {
		return nil, err
	}
	p, err := s.procs.get(req.GetId())
	if err != nil {
		return nil, err
	}
	for _, w := range []struct {
		want bool
		kind StreamKind
	}{
		{req.GetStdin(), StreamStdin},
		{req.GetStdout(), StreamStdout},
		{req.GetStderr(), StreamStderr},
	} {
		if w.want && !p.io.has(w.kind) {
			return nil, fmt.Errorf("%s: process %q was started without it: %w", w.kind, p.id, ErrFailedPrecondition)
		}
	}
	st, err := takeStreams(ctx, s.cfg.Broker, req, s.cfg.StdioTimeout)
	if err != nil {
		return nil, err
	}
	p.io.attach(st)
	return &agentpb.AttachStdioResponse{
		Stdin:     p.io.has(StreamStdin),
		Stdout:    p.io.has(StreamStdout),
		Stderr:    p.io.has(StreamStderr),
		Terminal:  p.terminal,
		AckOutput: st.acks,
	}, nil
}
