package cri

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
	"github.com/podvisor/podvisor/cri/store"
	"github.com/podvisor/podvisor/cri/store/container"
)

// errExecSyncTimeout is the cause of an ExecSync context that hit the
// request's own timeout (as opposed to the caller going away).
var errExecSyncTimeout = errors.New("exec sync timeout")

// execSyncDrainTimeout bounds reading a finished process's output: a
// background child that inherited stdout must not hold the call (a probe)
// open.
const execSyncDrainTimeout = 5 * time.Second

// ExecSync runs a command in a running container and returns its output,
// each stream capped at 16 MiB. When its timeout expires the process is
// killed and the call fails with DeadlineExceeded, which kubelet reads as
// a probe timeout.
func (s *Service) ExecSync(ctx context.Context, r *runtime.ExecSyncRequest) (*runtime.ExecSyncResponse, error) {
	if r.ContainerId == "" {
		return nil, invalid("container_id", "is empty")
	}
	if len(r.Cmd) == 0 {
		return nil, invalid("cmd", "is empty")
	}
	if r.Timeout < 0 {
		return nil, invalid("timeout", "%d is negative", r.Timeout)
	}
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, time.Duration(r.Timeout)*time.Second, errExecSyncTimeout)
		defer cancel()
	}
	p, err := s.startExec(ctx, r.ContainerId, r.Cmd, false, false)
	if err != nil {
		return nil, fmt.Errorf("exec in container %s: %w", r.ContainerId, execSyncErr(ctx, r.Timeout, err))
	}
	defer s.forgetExec(p)
	var stdout, stderr capBuffer
	stdout.limit, stderr.limit = maxExecSyncBytes, maxExecSyncBytes
	var wg sync.WaitGroup
	for _, c := range []struct {
		dst *capBuffer
		src io.Reader
	}{{&stdout, p.Stdout()}, {&stderr, p.Stderr()}} {
		if c.src == nil {
			continue
		}
		wg.Go(func() { io.Copy(c.dst, c.src) })
	}
	es, err := p.Wait(ctx)
	if err != nil {
		if ctx.Err() != nil {
			killCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			p.Signal(killCtx, syscall.SIGKILL)
			p.Wait(killCtx)
			cancel()
		}
		return nil, fmt.Errorf("exec in container %s: %w", r.ContainerId, execSyncErr(ctx, r.Timeout, err))
	}
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	timer := time.NewTimer(execSyncDrainTimeout)
	defer timer.Stop()
	select {
	case <-drained:
	case <-timer.C:
	case <-ctx.Done():
	}
	return &runtime.ExecSyncResponse{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: exitCode(es)}, nil
}

// execSyncErr names the request's timeout when it is what ended ctx.
func execSyncErr(ctx context.Context, timeout int64, err error) error {
	if errors.Is(context.Cause(ctx), errExecSyncTimeout) {
		return fmt.Errorf("timeout %ds exceeded: %w", timeout, context.DeadlineExceeded)
	}
	return err
}

func exitCode(es ExitStatus) int32 {
	if es.Signal != 0 {
		return 128 + int32(es.Signal)
	}
	return int32(es.Code)
}

// startExec starts cmd in a running container with the process attributes
// (user, env, cwd, capabilities, ...) of the container's own process.
func (s *Service) startExec(ctx context.Context, containerID string, cmd []string, tty, stdin bool) (Process, error) {
	c, err := s.containers.Get(containerID)
	if err != nil {
		return nil, err
	}
	if c.Status.State != container.StateRunning {
		return nil, fmt.Errorf("container is %s, not running: %w", c.Status.State, errdefs.ErrFailedPrecondition)
	}
	vm, ok := s.vm(c.Metadata.SandboxID)
	if !ok {
		return nil, fmt.Errorf("pod sandbox %s is not ready: %w", c.Metadata.SandboxID, errdefs.ErrFailedPrecondition)
	}
	var spec specs.Spec
	if err := json.Unmarshal(c.Metadata.SpecJSON, &spec); err != nil || spec.Process == nil {
		return nil, fmt.Errorf("stored OCI spec of container %s is unusable: %v", c.ID, err)
	}
	proc := *spec.Process
	proc.Args, proc.Terminal = cmd, tty
	proc.ConsoleSize = nil
	return vm.Exec(ctx, c.ID, ExecSpec{ID: "exec-" + store.GenerateID()[:32], Process: &proc, Stdin: stdin, Stdout: true, Stderr: !tty})
}

// forgetExec removes an exec'd process in the guest once it is done with,
// on a context of its own: the request may be over.
func (s *Service) forgetExec(p Process) {
	ctx, cancel := context.WithTimeout(s.svcCtx, 10*time.Second)
	defer cancel()
	p.Remove(ctx)
}

// capBuffer keeps the first limit bytes written and discards the rest, so
// a chatty process is never blocked on its output.
type capBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	limit int
}

func (b *capBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.limit - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *capBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
