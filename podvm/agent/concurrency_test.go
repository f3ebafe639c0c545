package agent

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// TestManyConcurrentProcesses runs 200 short processes at once through the
// whole start/wait/remove cycle and checks that nothing is left behind:
// goroutines, descriptors, table entries, zombies.
func TestManyConcurrentProcesses(t *testing.T) {
	const n = 200
	f := newFixture(t)
	baseG, baseFDs := f.baseline(t)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- f.cycle(t, fmt.Sprintf("p%d", i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := f.svc.procs.len(); got != 0 {
		t.Errorf("%d processes left in the table", got)
	}
	settled(t, baseG, baseFDs)
	if !eventually(5*time.Second, func() bool { return len(children()) == 0 }) {
		t.Errorf("children left behind: %v", children())
	}
}

// cycle starts a process that echoes its id on stdout and stderr, waits for
// it and removes it.
func (f *fixture) cycle(t *testing.T, id string) error {
	req := &agentpb.StartProcessRequest{
		Id: id, Args: []string{"/bin/sh", "-c", `echo "$0"; echo "$0" >&2; exit 7`, id},
		Stdout: true, Stderr: true,
	}
	hs, err := f.start(t, req)
	if err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	resp, err := f.client.WaitProcess(ctxFor(t), &agentpb.WaitProcessRequest{Id: id})
	if err != nil {
		return fmt.Errorf("wait %s: %w", id, err)
	}
	if resp.ExitCode != 7 {
		return fmt.Errorf("%s: exit %d", id, resp.ExitCode)
	}
	<-hs.stdout.done
	<-hs.stderr.done
	if out, errOut := hs.stdout.String(), hs.stderr.String(); out != id+"\n" || errOut != id+"\n" {
		return fmt.Errorf("%s: stdout %q stderr %q", id, out, errOut)
	}
	if _, err := f.client.RemoveProcess(ctxFor(t), &agentpb.RemoveProcessRequest{Id: id}); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	return nil
}
