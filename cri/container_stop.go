package cri

import (
	"context"
	"fmt"
	"syscall"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/cri/errdefs"
	"github.com/podvisor/podvisor/cri/store/container"
)

// unknownExitCode is the exit code of a container whose exit status was
// lost.
const unknownExitCode = 255

// StopContainer sends the stop signal, waits up to timeout seconds and
// then kills. Stopping an unknown or exited container succeeds.
func (s *Service) StopContainer(ctx context.Context, r *runtime.StopContainerRequest) (*runtime.StopContainerResponse, error) {
	if r.ContainerId == "" {
		return nil, invalid("container_id", "is empty")
	}
	if r.Timeout < 0 {
		return nil, invalid("timeout", "%d is negative", r.Timeout)
	}
	c, err := s.containers.Get(r.ContainerId)
	if errdefs.IsNotFound(err) {
		return &runtime.StopContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.stopContainer(ctx, c.ID, stopTimeout(r.Timeout)); err != nil {
		return nil, fmt.Errorf("stop container %s: %w", c.ID, err)
	}
	return &runtime.StopContainerResponse{}, nil
}

func (s *Service) stopContainer(ctx context.Context, id string, timeout time.Duration) error {
	c, err := s.containers.Get(id)
	if err != nil {
		return err
	}
	if c.Status.State != container.StateRunning && c.Status.State != container.StateUnknown {
		return nil
	}
	t, ok := s.task(id)
	if !ok {
		// No live process (VM lost across a restart): record the exit.
		// Its code is unknown; 255 as containerd, never 0, which kubelet
		// would take for success.
		_, err := s.containers.Update(id, func(st container.Status) (container.Status, error) {
			if st.State != container.StateRunning && st.State != container.StateUnknown {
				return st, nil
			}
			st.State, st.FinishedAt, st.ExitCode, st.Reason = container.StateExited, time.Now(), unknownExitCode, "Unknown"
			st.Message = "the container's process was lost with its pod VM"
			return st, nil
		})
		if err == nil {
			s.emit(id, c.Metadata.SandboxID, runtime.ContainerEventType_CONTAINER_STOPPED_EVENT)
			s.notifyContainerStopped(ctx, id)
		}
		return err
	}
	sig, err := parseSignal(c.Metadata.StopSignal)
	if err != nil {
		klog.InfoS("Bad stop signal, using SIGTERM", "containerID", id, "signal", c.Metadata.StopSignal)
		sig = syscall.SIGTERM
	}
	return s.stopTask(ctx, t, sig, timeout)
}
