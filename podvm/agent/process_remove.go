package agent

import (
	"context"
	"fmt"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// RemoveProcess forgets an exited process. Removing an unknown id succeeds,
// so that a remove retried after a lost reply does not fail. If the output of
// the process is still being copied (the host removes without waiting), the
// copy is cut short and the streams are closed.
func (s *Service) RemoveProcess(ctx context.Context, req *agentpb.RemoveProcessRequest) (*agentpb.Empty, error) {
	if err := s.removeProcess(req); err != nil {
		return nil, toStatus(fmt.Errorf("remove process: %w", err))
	}
	return &agentpb.Empty{}, nil
}

func (s *Service) removeProcess(req *agentpb.RemoveProcessRequest) error {
	if err := validateID(req.GetId()); err != nil {
		return err
	}
	var removed *process
	found, err := s.procs.remove(req.GetId(), func(p *process) error {
		if !p.hasExited() {
			return fmt.Errorf("process %q is running: %w", p.id, ErrFailedPrecondition)
		}
		removed = p
		return nil
	})
	if err != nil || !found {
		return err
	}
	removed.io.abort()
	klog.V(2).InfoS("Removed process", "processID", removed.id)
	return nil
}
