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
	userns idMappings // zero: the guest's user namespace
	exited chan struct{}
}

// PodPIDNamespace starts the pause process on first use, in a new PID
// namespace, and returns its PID; later calls return the same one while it
// runs. It runs as root with every capability, so a container without
// CAP_SYS_PTRACE cannot reach the guest's root through /proc/1/root.
//
// With ID mappings, the pause process is started in a new user namespace
// with those mappings, and its PID and IPC namespaces are owned by it: a
// container in that user namespace can mount proc for the PID namespace and
// mqueue for the IPC namespace only if its user namespace owns them. The
// pause process itself keeps the guest's root (kuid 0), which the mappings
// need not map. A running holder is returned only to callers asking for
// the same mappings.
func (s *Service) PodPIDNamespace(ctx context.Context, req *agentpb.PodPIDNamespaceRequest) (*agentpb.PodPIDNamespaceResponse, error) {
	if s.shuttingDown.Load() {
		return nil, fmt.Errorf("%w: the guest is shutting down", ErrFailedPrecondition)
	}
	userns, err := requestMappings(req)
	if err != nil {
		return nil, toStatus(err)
	}
	s.pidnsMu.Lock()
	defer s.pidnsMu.Unlock()
	if h := s.pidns; h != nil {
		select {
		case <-h.exited:
		default:
			if !h.userns.equal(userns) {
				return nil, toStatus(fmt.Errorf("the pod's namespaces were started with user namespace mappings %v, not %v: %w", h.userns, userns, ErrFailedPrecondition))
			}
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
	if !userns.zero() {
		attr.Sys.Cloneflags |= syscall.CLONE_NEWUSER | syscall.CLONE_NEWIPC
		attr.Sys.UidMappings, attr.Sys.GidMappings = userns.sysProcIDMaps()
		// The holder runs as the namespace's root, which is the mapped
		// guest ID, without supplementary groups: left as the guest's
		// root, a container allowed to ptrace it would reach the guest's
		// files through it as their owner. setgroups stays allowed in the
		// pod's namespace, as runc leaves it in the namespaces it makes.
		attr.Sys.GidMappingsEnableSetgroups = true
		attr.Sys.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	}
	pid, exitCh, err := s.cfg.Reaper.Start(func() (int, error) {
		return syscall.ForkExec(self, []string{"podvisor-pause", PauseArg}, attr)
	})
	if err != nil {
		return nil, fmt.Errorf("start the pod PID namespace holder: %w", err)
	}
	h := &podPIDNS{pid: pid, userns: userns, exited: make(chan struct{})}
	go func() {
		e := <-exitCh
		klog.InfoS("Pod PID namespace holder exited", "pid", pid, "status", e)
		close(h.exited)
	}()
	s.pidns = h
	klog.InfoS("Started the pod PID namespace holder", "pid", pid, "userns", userns)
	return &agentpb.PodPIDNamespaceResponse{Pid: int32(pid)}, nil
}
