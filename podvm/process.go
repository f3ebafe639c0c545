package podvm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
	"github.com/podvisor/podvisor/podvm/channel"
)

// ProcessSpec describes a process to run in the guest.
type ProcessSpec struct {
	ID       string
	Args     []string
	Env      []string
	Cwd      string
	UID, GID uint32
	Groups   []uint32
	// Terminal gives the process a pty: Stdout carries its output, Stderr
	// is unused.
	Terminal   bool
	Rows, Cols uint32
	// Which stdio streams to connect; the others read/write /dev/null.
	Stdin, Stdout, Stderr bool
}

// Process is a process started in the guest.
type Process struct {
	vm  *VM
	id  string
	pid int

	// Stdin, Stdout and Stderr are set when requested. Closing Stdin sends
	// EOF to the process.
	Stdin  io.WriteCloser
	Stdout io.ReadCloser
	Stderr io.ReadCloser
}

// ExitStatus is how a process ended.
type ExitStatus struct {
	Code     int
	Signal   syscall.Signal
	Started  time.Time
	Finished time.Time
	// OOMKilled: a container's init whose cgroup saw an OOM kill.
	OOMKilled bool
}

// Start runs spec in the guest. The stdio streams are opened before the
// agent starts the process so that no output is lost.
func (v *VM) Start(ctx context.Context, spec ProcessSpec) (*Process, error) {
	st, err := v.openStdio(ctx, spec.ID, spec.Stdin, spec.Stdout, spec.Stderr)
	if err != nil {
		return nil, err
	}
	resp, err := v.agent.client.StartProcess(ctx, &agentpb.StartProcessRequest{
		Id:             spec.ID,
		Args:           spec.Args,
		Env:            spec.Env,
		Cwd:            spec.Cwd,
		Uid:            spec.UID,
		Gid:            spec.GID,
		AdditionalGids: spec.Groups,
		Terminal:       spec.Terminal,
		Rows:           spec.Rows,
		Cols:           spec.Cols,
		Stdin:          spec.Stdin,
		Stdout:         spec.Stdout,
		Stderr:         spec.Stderr,
		AckOutput:      true,
	})
	if err != nil {
		st.close()
		return nil, fmt.Errorf("start process %q: %w", spec.ID, err)
	}
	p := &Process{vm: v, id: spec.ID, pid: int(resp.Pid)}
	st.attach(p, spec.Stdin, spec.Stdout, spec.Stderr, resp.AckOutput)
	return p, nil
}

// stdinWriter turns Close into a half-close: the process reads EOF.
type stdinWriter struct{ s channel.Stream }

func (w stdinWriter) Write(b []byte) (int, error) { return w.s.Write(b) }
func (w stdinWriter) Close() error                { return w.s.CloseWrite() }

// ID is the process id given at Start; PID is its pid in the guest.
func (p *Process) ID() string { return p.id }
func (p *Process) PID() int   { return p.pid }

// Wait blocks until the process exits and its output has been sent.
func (p *Process) Wait(ctx context.Context) (ExitStatus, error) {
	resp, err := p.vm.agent.client.WaitProcess(ctx, &agentpb.WaitProcessRequest{Id: p.id})
	if err != nil {
		select {
		case <-p.vm.Done():
			return ExitStatus{}, errors.Join(fmt.Errorf("wait process %q: %w", p.id, err), p.vm.Err())
		default:
		}
		return ExitStatus{}, fmt.Errorf("wait process %q: %w", p.id, err)
	}
	return ExitStatus{
		Code:      int(resp.ExitCode),
		Signal:    syscall.Signal(resp.Signal),
		Started:   time.Unix(0, resp.StartedUnixNano),
		Finished:  time.Unix(0, resp.ExitedUnixNano),
		OOMKilled: resp.OomKilled,
	}, nil
}

// Signal delivers sig to the process.
func (p *Process) Signal(ctx context.Context, sig syscall.Signal) error {
	_, err := p.vm.agent.client.SignalProcess(ctx, &agentpb.SignalProcessRequest{Id: p.id, Signal: int32(sig)})
	if err != nil {
		return fmt.Errorf("signal process %q: %w", p.id, err)
	}
	return nil
}

// Resize changes the terminal size of a process started with Terminal.
func (p *Process) Resize(ctx context.Context, rows, cols uint32) error {
	_, err := p.vm.agent.client.ResizeTTY(ctx, &agentpb.ResizeTTYRequest{Id: p.id, Rows: rows, Cols: cols})
	if err != nil {
		return fmt.Errorf("resize process %q: %w", p.id, err)
	}
	return nil
}

// Remove makes the agent forget the exited process and closes its streams.
func (p *Process) Remove(ctx context.Context) error {
	for _, c := range []io.Closer{p.Stdin, p.Stdout, p.Stderr} {
		if c != nil {
			c.Close()
		}
	}
	_, err := p.vm.agent.client.RemoveProcess(ctx, &agentpb.RemoveProcessRequest{Id: p.id})
	if err != nil {
		return fmt.Errorf("remove process %q: %w", p.id, err)
	}
	return nil
}

// ErrAgentTooOld means the guest agent lacks a call the request needs: the
// VM was booted from an older guest image.
var ErrAgentTooOld = errors.New("guest agent too old")

// Process returns a handle on a process the agent already runs, running or
// exited (a container's init process, after a daemon restart), with the
// stdio streams it was started with attached anew: Stdout and Stderr
// return first the output written while no host was attached (the newest
// 4 MiB per stream, if more), then the live output; Stdin feeds the
// process again. Any streams an earlier handle had are closed.
func (v *VM) Process(ctx context.Context, id string) (*Process, error) {
	info, err := v.agent.client.InspectProcess(ctx, &agentpb.InspectProcessRequest{Id: id})
	if err != nil {
		return nil, fmt.Errorf("process %q: %w", id, err)
	}
	st, err := v.openStdio(ctx, id, info.Stdin, info.Stdout, info.Stderr)
	if err != nil {
		return nil, err
	}
	resp, err := v.agent.client.AttachStdio(ctx, &agentpb.AttachStdioRequest{
		Id:        id,
		Stdin:     info.Stdin,
		Stdout:    info.Stdout,
		Stderr:    info.Stderr,
		AckOutput: true,
	})
	if err != nil {
		st.close()
		if status.Code(err) == codes.Unimplemented {
			return nil, fmt.Errorf("process %q: re-attach stdio: %w: %w", id, ErrAgentTooOld, err)
		}
		return nil, fmt.Errorf("process %q: re-attach stdio: %w", id, err)
	}
	p := &Process{vm: v, id: id, pid: int(info.Pid)}
	st.attach(p, info.Stdin, info.Stdout, info.Stderr, resp.AckOutput)
	return p, nil
}
