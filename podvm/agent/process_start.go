package agent

import (
	"context"
	"fmt"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// StartProcess validates the request, takes the stdio streams the host
// opened for it and starts the process.
func (s *Service) StartProcess(ctx context.Context, req *agentpb.StartProcessRequest) (*agentpb.StartProcessResponse, error) {
	pid, err := s.startProcess(ctx, req)
	if err != nil {
		klog.V(2).InfoS("StartProcess failed", "processID", req.GetId(), "err", err)
		return nil, toStatus(fmt.Errorf("start process: %w", err))
	}
	klog.InfoS("Started process", "processID", req.GetId(), "pid", pid, "terminal", req.GetTerminal())
	klog.V(4).InfoS("Started process arguments", "processID", req.GetId(), "args", req.GetArgs())
	return &agentpb.StartProcessResponse{Pid: int32(pid), AckOutput: req.GetAckOutput()}, nil
}

func (s *Service) startProcess(ctx context.Context, req *agentpb.StartProcessRequest) (_ int, retErr error) {
	if err := validateStart(req); err != nil {
		return 0, err
	}
	if s.shuttingDown.Load() {
		return 0, fmt.Errorf("the guest is shutting down: %w", ErrFailedPrecondition)
	}
	p := newProcess(req.GetId(), req.GetArgs(), req.GetTerminal())
	if err := s.procs.reserve(p); err != nil {
		return 0, err
	}
	defer func() {
		if retErr != nil {
			s.procs.release(p)
		}
	}()

	// Take the streams before anything else can fail, so that a failed start
	// closes them and the host's copies end instead of waiting forever.
	st, err := takeStreams(ctx, s.cfg.Broker, req, s.cfg.StdioTimeout)
	if err != nil {
		return 0, err
	}
	defer func() {
		if retErr != nil {
			st.closeAll()
		}
	}()

	path, err := resolveArgv0(req.GetArgs()[0], req.GetEnv(), s.cfg.DefaultPath)
	if err != nil {
		return 0, err
	}
	pio, err := newProcessIO(req.GetId(), st, req.GetTerminal(), req.GetRows(), req.GetCols())
	if err != nil {
		return 0, err
	}
	if err := s.spawn(p, path, req, pio); err != nil {
		pio.closeOwn()
		return 0, err
	}
	s.procs.publish(p)
	return p.pid, nil
}
