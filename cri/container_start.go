package cri

import (
	"context"
	"errors"
	"fmt"
	"syscall"
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
//
// The start is an operation of the Service (inflight.go): were it bound to
// the request, a caller giving up halfway could leave the container
// running in the guest while its status says it failed to start. A retry
// during the start waits for it; a retry after it is FailedPrecondition,
// as the container is no longer created.
func (s *Service) StartContainer(ctx context.Context, r *runtime.StartContainerRequest) (*runtime.StartContainerResponse, error) {
	if r.ContainerId == "" {
		return nil, invalid("container_id", "is empty")
	}
	c, err := s.containers.Get(r.ContainerId)
	if err != nil {
		return nil, fmt.Errorf("start container: %w", err)
	}
	o, err := s.startOp(ctx, c)
	if err != nil {
		return nil, err
	}
	if err := o.wait(ctx); err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return nil, fmt.Errorf("start container %s: stopped waiting; the start goes on: %w", c.ID, err)
		}
		return nil, fmt.Errorf("start container %s: %w", c.ID, err)
	}
	return &runtime.StartContainerResponse{}, nil
}

// startOp returns the start in flight for c or starts one.
func (s *Service) startOp(ctx context.Context, c container.Container) (*op, error) {
	key := "start/" + c.ID
	s.ops.mu.Lock()
	defer s.ops.mu.Unlock()
	o, err := s.ops.lookupLocked(key)
	if err != nil {
		return nil, err
	}
	if o != nil {
		return o, nil
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
	o = newOp(c.ID)
	s.launchLocked(ctx, key, o, startTimeout, func(ctx context.Context) error { return s.startContainer(ctx, c) })
	return o, nil
}

// startContainer starts c in its pod VM and records the outcome: running,
// or exited with reason StartError.
func (s *Service) startContainer(ctx context.Context, c container.Container) error {
	var err error
	vm, ok := s.vm(c.Metadata.SandboxID)
	pod := s.nriPodOf(c.Metadata.SandboxID)
	if !ok {
		err = fmt.Errorf("pod sandbox %s is not ready: %w", c.Metadata.SandboxID, errdefs.ErrFailedPrecondition)
	} else if err = s.nri.startContainer(ctx, pod, nriContainer(c)); err == nil {
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
		// The init process may still wait in the guest (runc create'd
		// it); it must not run later behind a StartError status.
		if t, ok := s.task(c.ID); ok {
			kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if kerr := t.proc.Signal(kctx, syscall.SIGKILL); kerr != nil {
				klog.V(2).InfoS("Killing a container that failed to start", "containerID", c.ID, "err", kerr)
			}
			cancel()
		}
		s.emit(c.ID, c.Metadata.SandboxID, runtime.ContainerEventType_CONTAINER_STOPPED_EVENT)
		s.notifyContainerStopped(ctx, c.ID)
		return err
	}
	if uerr != nil {
		return uerr
	}
	klog.InfoS("Container started", "containerID", c.ID)
	s.emit(c.ID, c.Metadata.SandboxID, runtime.ContainerEventType_CONTAINER_STARTED_EVENT)
	if s.nri != nil {
		if cur, err := s.containers.Get(c.ID); err == nil {
			s.nri.postStartContainer(ctx, pod, nriContainer(cur))
		}
	}
	return nil
}
