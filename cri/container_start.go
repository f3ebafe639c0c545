package cri

import (
	"context"
	"fmt"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/cri/errdefs"
	"github.com/podvisor/podvisor/cri/store/container"
)

// startErrorExitCode is what a container that failed to start reports, as
// under containerd.
const startErrorExitCode = 128

// StartContainer starts a created container.
func (s *Service) StartContainer(ctx context.Context, r *runtime.StartContainerRequest) (*runtime.StartContainerResponse, error) {
	if r.ContainerId == "" {
		return nil, invalid("container_id", "is empty")
	}
	c, err := s.containers.Get(r.ContainerId)
	if err != nil {
		return nil, fmt.Errorf("start container: %w", err)
	}
	_, err = s.containers.Update(c.ID, func(st container.Status) (container.Status, error) {
		if st.State != container.StateCreated || st.Starting || st.Removing {
			return st, fmt.Errorf("start container %s: it is %s, not created: %w", c.ID, st.State, errdefs.ErrFailedPrecondition)
		}
		st.Starting = true
		return st, nil
	})
	if err != nil {
		return nil, err
	}
	vm, ok := s.vm(c.Metadata.SandboxID)
	if !ok {
		err = fmt.Errorf("pod sandbox %s is not ready: %w", c.Metadata.SandboxID, errdefs.ErrFailedPrecondition)
	} else {
		err = vm.StartContainer(ctx, c.ID)
	}
	now := time.Now()
	_, uerr := s.containers.Update(c.ID, func(st container.Status) (container.Status, error) {
		st.Starting = false
		if err != nil {
			st.State, st.FinishedAt, st.ExitCode = container.StateExited, now, startErrorExitCode
			st.Reason, st.Message = "StartError", err.Error()
			return st, nil
		}
		if st.State == container.StateCreated {
			st.State, st.StartedAt = container.StateRunning, now
		}
		return st, nil
	})
	if err != nil {
		return nil, fmt.Errorf("start container %s: %w", c.ID, err)
	}
	if uerr != nil {
		return nil, fmt.Errorf("start container %s: %w", c.ID, uerr)
	}
	klog.InfoS("Container started", "containerID", c.ID)
	s.emit(c.ID, c.Metadata.SandboxID, runtime.ContainerEventType_CONTAINER_STARTED_EVENT)
	return &runtime.StartContainerResponse{}, nil
}
