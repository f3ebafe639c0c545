package agent

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// PauseArg is the argument that makes the agent binary the pause process
// holding a pod's shared PID namespace (see RunPause).
const PauseArg = "pause"

// podPIDNS is the holder of the pod's shared PID namespace.
type podPIDNS struct {
	pid    int
	exited chan struct{}
}

// PodPIDNamespace starts the pause process on first use, in a new PID
// namespace, and returns its PID; later calls return the same one while it
// runs. It runs as root with every capability, so a container without
// CAP_SYS_PTRACE cannot reach the guest's root through /proc/1/root.
func (s *Service) PodPIDNamespace(ctx context.Context, _ *agentpb.Empty) (*agentpb.PodPIDNamespaceResponse, error) {
	if s.shuttingDown.Load() {
		return nil, fmt.Errorf("%w: the guest is shutting down", ErrFailedPrecondition)
	}
	s.pidnsMu.Lock()
	defer s.pidnsMu.Unlock()
	if h := s.pidns; h != nil {
		select {
		case <-h.exited:
		default:
			return &agentpb.PodPIDNamespaceResponse{Pid: int32(h.pid)}, nil
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the agent binary: %w", err)
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	attr := &syscall.ProcAttr{
		Dir:   "/",
		Env:   []string{},
		Files: []uintptr{null.Fd(), null.Fd(), null.Fd()},
		Sys:   &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Setpgid: true},
	}
	pid, exitCh, err := s.cfg.Reaper.Start(func() (int, error) {
		return syscall.ForkExec(self, []string{"podvisor-pause", PauseArg}, attr)
	})
	if err != nil {
		return nil, fmt.Errorf("start the pod PID namespace holder: %w", err)
	}
	h := &podPIDNS{pid: pid, exited: make(chan struct{})}
	go func() {
		e := <-exitCh
		klog.InfoS("Pod PID namespace holder exited", "pid", pid, "status", e)
		close(h.exited)
	}()
	s.pidns = h
	klog.InfoS("Started the pod PID namespace holder", "pid", pid)
	return &agentpb.PodPIDNamespaceResponse{Pid: int32(pid)}, nil
}
