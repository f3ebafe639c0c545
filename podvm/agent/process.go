package agent

import (
	"time"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
	"github.com/podvisor/podvisor/podvm/agent/reaper"
)

// process is one process the agent started. id, args and terminal never
// change; pid, started and io are set before the process is published in the
// table; exit is written once, before exited is closed, and read only after
// (the close orders the two).
type process struct {
	id       string
	args     []string
	terminal bool

	pid     int
	started time.Time
	io      *processIO

	exited chan struct{} // closed when the reaper reported the exit
	done   chan struct{} // closed when exited and the output is copied out
	exit   reaper.Exit
}

func newProcess(id string, args []string, terminal bool) *process {
	return &process{
		id:       id,
		args:     args,
		terminal: terminal,
		exited:   make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// follow starts copying the stdio of the started process on pio and
// following it to its end. It runs before the process is published.
func (p *process) follow(pio *processIO, exitCh <-chan reaper.Exit) {
	p.io = pio
	pio.startCopies(p.exited)
	go p.run(exitCh)
}

// run follows the process from start to done: it waits for the reaper to
// report its exit and for the outputs to be drained, then releases what the
// process held.
func (p *process) run(exitCh <-chan reaper.Exit) {
	p.exit = <-exitCh
	close(p.exited)
	p.io.exited()
	p.io.waitCopied()
	p.io.closeOwn()
	close(p.done)
}

func (p *process) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func (p *process) isDone() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) exitStatus() (reaper.Exit, bool) {
	if !p.hasExited() {
		return reaper.Exit{}, false
	}
	return p.exit, true
}

// info describes the process. ListProcesses abbreviates the arguments so that
// a full table fits in one reply; InspectProcess gives them in full.
func (p *process) info(abbreviate bool) *agentpb.ProcessInfo {
	args := p.args
	if abbreviate {
		args = abbreviateArgs(args)
	}
	pi := &agentpb.ProcessInfo{
		Id:              p.id,
		Pid:             int32(p.pid),
		Args:            args,
		Terminal:        p.terminal,
		Running:         true,
		StartedUnixNano: p.started.UnixNano(),
		Stdin:           p.io.has(StreamStdin),
		Stdout:          p.io.has(StreamStdout),
		Stderr:          p.io.has(StreamStderr),
	}
	if e, ok := p.exitStatus(); ok {
		pi.Running = false
		pi.ExitCode = int32(e.ExitCode())
		pi.Signal = int32(e.Signal())
		pi.ExitedUnixNano = e.Time.UnixNano()
	}
	return pi
}

// With at most maxProcesses entries, these keep a ListProcesses reply under
// 1 MiB of arguments.
const (
	listMaxArgs   = 8
	listMaxArgLen = 120
)

func abbreviateArgs(args []string) []string {
	n := min(len(args), listMaxArgs)
	out := make([]string, n)
	for i, a := range args[:n] {
		out[i] = truncate(a, listMaxArgLen)
	}
	if len(args) > n {
		out[n-1] = "…"
	}
	return out
}
