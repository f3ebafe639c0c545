package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// ExecProcess runs `runc exec` for an additional process in a running
// container. The process is tracked under its own id.
func (s *Service) ExecProcess(ctx context.Context, req *agentpb.ExecProcessRequest) (*agentpb.ExecProcessResponse, error) {
	pid, err := s.execProcess(ctx, req)
	if err != nil {
		klog.V(2).InfoS("ExecProcess failed", "containerID", req.GetContainerId(), "processID", req.GetId(), "err", err)
		return nil, toStatus(fmt.Errorf("exec process: %w", err))
	}
	klog.InfoS("Exec'd process", "containerID", req.GetContainerId(), "processID", req.GetId(), "pid", pid, "terminal", req.GetTerminal())
	return &agentpb.ExecProcessResponse{Pid: int32(pid), AckOutput: req.GetAckOutput()}, nil
}

func (s *Service) execProcess(ctx context.Context, req *agentpb.ExecProcessRequest) (_ int, retErr error) {
	proc, err := validateExec(req)
	if err != nil {
		return 0, err
	}
	if s.shuttingDown.Load() {
		return 0, fmt.Errorf("the guest is shutting down: %w", ErrFailedPrecondition)
	}
	c, err := s.containers.get(req.GetContainerId())
	if err != nil {
		return 0, fmt.Errorf("container_id: %w", err)
	}
	if c.init.hasExited() {
		return 0, fmt.Errorf("container %q has exited: %w", c.id, ErrFailedPrecondition)
	}
	p := newProcess(req.GetId(), proc.Args, proc.Terminal)
	if err := s.procs.reserve(p); err != nil {
		return 0, err
	}
	defer func() {
		if retErr != nil {
			s.procs.release(p)
		}
	}()
	st, err := takeStreams(ctx, s.cfg.Broker, req, s.cfg.StdioTimeout)
	if err != nil {
		return 0, err
	}
	defer func() {
		if retErr != nil {
			st.closeAll()
		}
	}()

	// The process spec and runc's files for it live in the bundle, removed
	// with the container; the spec itself is not needed once runc read it.
	specFile := filepath.Join(c.bundle, "exec-"+p.id+".json")
	data, err := json.Marshal(proc)
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(specFile, data, 0o600); err != nil {
		return 0, fmt.Errorf("process spec: %w", err)
	}
	defer os.Remove(specFile)
	pidFile := filepath.Join(c.bundle, "exec-"+p.id+".pid")
	defer os.Remove(pidFile)
	l := launch{
		args:        []string{"exec", "--detach", "--process", specFile},
		containerID: c.id,
		logFile:     filepath.Join(c.bundle, "exec-"+p.id+".log"),
		pidFile:     pidFile,
		terminal:    proc.Terminal,
	}
	defer os.Remove(l.logFile)
	if cs := proc.ConsoleSize; cs != nil {
		l.rows, l.cols = uint32(cs.Height), uint32(cs.Width)
	}
	pid, err := s.launch(ctx, p, st, l)
	if err != nil {
		if pid != 0 {
			// runc left the process running, but the agent cannot serve
			// it: end it rather than leave it unattended.
			_ = s.cfg.Reaper.Kill(pid, syscall.SIGKILL)
		}
		return 0, err
	}
	s.procs.publish(p)
	return pid, nil
}

func validateExec(req *agentpb.ExecProcessRequest) (*specs.Process, error) {
	if err := validateID(req.GetContainerId()); err != nil {
		return nil, fmt.Errorf("container_%w", err)
	}
	if err := validateID(req.GetId()); err != nil {
		return nil, err
	}
	var proc specs.Process
	if err := decodeStrict("process", req.GetProcess(), &proc); err != nil {
		return nil, err
	}
	if err := validateOCIProcess("process", &proc); err != nil {
		return nil, err
	}
	if proc.Terminal != req.GetTerminal() {
		return nil, invalid("terminal", "%v, but process.terminal is %v", req.GetTerminal(), proc.Terminal)
	}
	if req.GetTerminal() && req.GetStderr() {
		return nil, invalid("stderr", "not available with terminal")
	}
	return &proc, nil
}
