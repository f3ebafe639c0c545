package agent

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// WaitProcess waits until the process has exited and its output has been
// copied out, or until the request ends.
func (s *Service) WaitProcess(ctx context.Context, req *agentpb.WaitProcessRequest) (*agentpb.WaitProcessResponse, error) {
	if err := validateID(req.GetId()); err != nil {
		return nil, toStatus(fmt.Errorf("wait process: %w", err))
	}
	p, err := s.procs.get(req.GetId())
	if err != nil {
		return nil, toStatus(fmt.Errorf("wait process: %w", err))
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return nil, toStatus(fmt.Errorf("wait process %q: %w", p.id, ctx.Err()))
	}
	e, _ := p.exitStatus()
	exited := e.Time
	if exited.Before(p.started) {
		// The start and exit times are read on different goroutines; a
		// process cannot end before it began.
		exited = p.started
	}
	return &agentpb.WaitProcessResponse{
		ExitCode:        int32(e.ExitCode()),
		Signal:          int32(e.Signal()),
		StartedUnixNano: p.started.UnixNano(),
		ExitedUnixNano:  exited.UnixNano(),
		OomKilled:       s.oomKilled(p.id),
	}, nil
}

// oomKilled reports whether id is a container whose cgroup saw an OOM
// kill. The cgroup outlives the init process until DeleteContainer.
func (s *Service) oomKilled(id string) bool {
	c, err := s.containers.get(id)
	if err != nil || c.cgroup == "" {
		return false
	}
	events, err := readKeyedFile(filepath.Join(s.cfg.Containers.CgroupRoot, c.cgroup, "memory.events"))
	return err == nil && events["oom_kill"] > 0
}
