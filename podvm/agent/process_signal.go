package agent

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
	"github.com/podvisor/podvisor/podvm/agent/reaper"
)

// maxSignal is SIGRTMAX on Linux.
const maxSignal = 64

// SignalProcess sends a signal to the process itself (not its group).
//
// Signalling a process that has exited is a success for SIGTERM and SIGKILL,
// like stopping a stopped container in the CRI: the host's intent, that the
// process end, holds, and a stop retried after a lost reply must not fail.
// Any other signal to an exited process is FailedPrecondition, because the
// host asked for an effect (a reload, a dump) that did not happen.
func (s *Service) SignalProcess(ctx context.Context, req *agentpb.SignalProcessRequest) (*agentpb.Empty, error) {
	if err := s.signalProcess(req); err != nil {
		return nil, toStatus(fmt.Errorf("signal process: %w", err))
	}
	return &agentpb.Empty{}, nil
}

func (s *Service) signalProcess(req *agentpb.SignalProcessRequest) error {
	if err := validateID(req.GetId()); err != nil {
		return err
	}
	sig := syscall.Signal(req.GetSignal())
	if sig < 1 || sig > maxSignal {
		return invalid("signal", "%d is not in 1..%d", req.GetSignal(), maxSignal)
	}
	p, err := s.procs.get(req.GetId())
	if err != nil {
		return err
	}
	err = s.cfg.Reaper.Kill(p.pid, sig)
	switch {
	case errors.Is(err, reaper.ErrNotRunning):
		if sig == syscall.SIGTERM || sig == syscall.SIGKILL {
			return nil
		}
		return fmt.Errorf("process %q has exited: %w", p.id, ErrFailedPrecondition)
	case err != nil:
		return fmt.Errorf("kill %d: %w", p.pid, err)
	}
	klog.V(2).InfoS("Signalled process", "processID", p.id, "signal", int(sig))
	return nil
}
