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

// task is the live side of a container: its init process in the guest,
// its IO, and a channel closed once its exit has been recorded.
type task struct {
	id, sandboxID string
	proc          Process
	io            *containerIO
	exited        chan struct{}
}

func (s *Service) addTask(t *task) {
	s.mu.Lock()
	s.tasks[t.id] = t
	s.mu.Unlock()
	go s.waitTask(t)
}

// waitTask records the exit of t's init process.
func (s *Service) waitTask(t *task) {
	defer close(t.exited)
	es, err := t.proc.Wait(s.svcCtx)
	if s.svcCtx.Err() != nil {
		return // the daemon is stopping; the container keeps running
	}
	now := time.Now()
	recorded := false
	// A plugin synchronised meanwhile sees the container either running
	// (and hears of its stop) or exited.
	unblock := s.nri.blockSync()
	defer unblock()
	_, uerr := s.containers.Update(t.id, func(st container.Status) (container.Status, error) {
		if st.State == container.StateExited {
			return st, nil // a start failure or a lost VM was recorded first
		}
		recorded = true
		st.State = container.StateExited
		st.FinishedAt = now
		if err != nil {
			st.ExitCode, st.Reason = unknownExitCode, "Unknown"
			st.Message = fmt.Sprintf("exit status lost: %v", err)
			return st, nil
		}
		if !es.Finished.IsZero() {
			st.FinishedAt = es.Finished
		}
		if st.StartedAt.IsZero() && !es.Started.IsZero() {
			st.StartedAt = es.Started
		}
		st.ExitCode = int32(es.Code)
		if es.Signal != 0 {
			st.ExitCode = 128 + int32(es.Signal)
		}
		switch {
		case es.OOMKill:
			st.Reason = "OOMKilled"
		case st.ExitCode == 0:
			st.Reason = "Completed"
		default:
			st.Reason = "Error"
		}
		return st, nil
	})
	// Only the record needs synchronisation held back: a plugin that
	// connects now sees the container exited and may also hear of its
	// stop, and the plugins' StopContainer (with the updates they ask for
	// in other pods' guests) cannot hold every other pod's work back.
	unblock()
	if uerr != nil && !errdefs.IsNotFound(uerr) {
		klog.ErrorS(uerr, "Recording container exit", "containerID", t.id)
	}
	if !recorded {
		return
	}
	klog.InfoS("Container exited", "containerID", t.id, "exitCode", es.Code, "signal", es.Signal, "err", err)
	s.emit(t.id, t.sandboxID, runtime.ContainerEventType_CONTAINER_STOPPED_EVENT)
	s.notifyContainerStopped(s.svcCtx, t.id)
}

// stopTask sends the stop signal, waits up to timeout, then SIGKILL and
// waits for the exit to be recorded (bounded by ctx).
func (s *Service) stopTask(ctx context.Context, t *task, sig syscall.Signal, timeout time.Duration) error {
	select {
	case <-t.exited:
		return nil
	default:
	}
	if timeout > 0 {
		if err := t.proc.Signal(ctx, sig); err != nil {
			klog.V(2).InfoS("Stop signal failed, killing", "containerID", t.id, "signal", sig, "err", err)
		} else {
			timer := time.NewTimer(timeout)
			defer timer.Stop()
			select {
			case <-t.exited:
				return nil
			case <-timer.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if err := t.proc.Signal(ctx, syscall.SIGKILL); err != nil {
		select {
		case <-t.exited:
			return nil
		default:
		}
		klog.V(2).InfoS("SIGKILL failed", "containerID", t.id, "err", err)
	}
	select {
	case <-t.exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("container %s did not exit after SIGKILL: %w", t.id, ctx.Err())
	}
}
