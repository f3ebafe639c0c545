package cri

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/cri/errdefs"
	"github.com/podvisor/podvisor/cri/store/container"
)

// RemoveContainer kills the container if it runs and removes it. Removing
// an unknown container succeeds.
func (s *Service) RemoveContainer(ctx context.Context, r *runtime.RemoveContainerRequest) (*runtime.RemoveContainerResponse, error) {
	if r.ContainerId == "" {
		return nil, invalid("container_id", "is empty")
	}
	c, err := s.containers.Get(r.ContainerId)
	if errdefs.IsNotFound(err) {
		return &runtime.RemoveContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.removeContainer(ctx, c.ID); err != nil {
		return nil, fmt.Errorf("remove container %s: %w", c.ID, err)
	}
	return &runtime.RemoveContainerResponse{}, nil
}

func (s *Service) removeContainer(ctx context.Context, id string) error {
	c, err := s.containers.Update(id, func(st container.Status) (container.Status, error) {
		if st.Starting {
			return st, fmt.Errorf("container is starting: %w", errdefs.ErrFailedPrecondition)
		}
		st.Removing = true
		return st, nil
	})
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.State == container.StateRunning || c.State == container.StateUnknown {
		if err := s.stopContainer(ctx, id, 0); err != nil {
			return err
		}
	}
	rec, err := s.containers.Get(id)
	if err != nil {
		return err
	}
	if vm, ok := s.vm(rec.Metadata.SandboxID); ok {
		if err := vm.DeleteContainer(ctx, id); err != nil {
			return fmt.Errorf("delete in pod VM: %w", err)
		}
		if err := vm.ReleaseContainerFiles(ctx, id); err != nil {
			return fmt.Errorf("release container files: %w", err)
		}
	}
	s.mu.Lock()
	t := s.tasks[id]
	delete(s.tasks, id)
	s.mu.Unlock()
	if t != nil {
		if err := t.proc.Remove(ctx); err != nil {
			klog.V(2).InfoS("Forgetting container process", "containerID", id, "err", err)
		}
	}
	// A plugin synchronised meanwhile either sees the container or hears
	// of its removal.
	unblock := s.nri.blockSync()
	defer unblock()
	last, getErr := s.containers.Get(id)
	if getErr != nil && !errdefs.IsNotFound(getErr) {
		return getErr
	}
	if err := s.containers.Delete(id); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	if getErr == nil && s.nri != nil {
		s.nri.removeContainer(context.WithoutCancel(ctx), s.nriPodOf(last.Metadata.SandboxID), nriContainer(last))
	}
	s.containerNames.Release(rec.Metadata.Name, id)
	klog.InfoS("Container removed", "containerID", id)
	s.emit(id, rec.Metadata.SandboxID, runtime.ContainerEventType_CONTAINER_DELETED_EVENT)
	return nil
}
