package agent

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

func TestListAndInspect(t *testing.T) {
	f := newFixture(t)
	long := strings.Repeat("x", 1000)
	f.mustStart(t, &agentpb.StartProcessRequest{Id: "b-sleeper", Args: []string{"/bin/sh", "-c", "exec sleep 100", long}})
	f.mustStart(t, shell("a-exit", "exit 4"))
	f.wait(t, "a-exit")

	list, err := f.client.ListProcesses(ctxFor(t), &agentpb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Processes) != 2 {
		t.Fatalf("%d processes, want 2", len(list.Processes))
	}
	a, b := list.Processes[0], list.Processes[1]
	if a.Id != "a-exit" || a.Running || a.ExitCode != 4 || a.ExitedUnixNano == 0 {
		t.Errorf("a-exit: %v", a)
	}
	if b.Id != "b-sleeper" || !b.Running || b.Pid <= 0 || len(b.Args[3]) >= len(long) {
		t.Errorf("b-sleeper (args abbreviated): %v", b)
	}

	full, err := f.client.InspectProcess(ctxFor(t), &agentpb.InspectProcessRequest{Id: "b-sleeper"})
	if err != nil {
		t.Fatal(err)
	}
	if full.Args[3] != long || !full.Running || full.Pid != b.Pid {
		t.Errorf("inspect: running %v pid %d args %d", full.Running, full.Pid, len(full.Args))
	}

	if _, err := f.client.SignalProcess(ctxFor(t), &agentpb.SignalProcessRequest{Id: "b-sleeper", Signal: 9}); err != nil {
		t.Fatal(err)
	}
	f.wait(t, "b-sleeper")
	full, err = f.client.InspectProcess(ctxFor(t), &agentpb.InspectProcessRequest{Id: "b-sleeper"})
	if err != nil {
		t.Fatal(err)
	}
	if full.Running || full.ExitCode != 137 || full.Signal != 9 {
		t.Errorf("after kill: %v", full)
	}
}

func TestAbbreviateArgs(t *testing.T) {
	args := make([]string, 20)
	for i := range args {
		args[i] = strings.Repeat("é", 200)
	}
	got := abbreviateArgs(args)
	if len(got) != listMaxArgs || got[listMaxArgs-1] != "…" {
		t.Fatalf("got %d args, last %q", len(got), got[len(got)-1])
	}
	for _, a := range got {
		if len(a) > listMaxArgLen+len("…") || !isValidUTF8(a) {
			t.Errorf("arg %q", a)
		}
	}
	if short := abbreviateArgs([]string{"sh", "-c"}); len(short) != 2 || short[1] != "-c" {
		t.Errorf("short args changed: %q", short)
	}
}

func TestUnknownID(t *testing.T) {
	f := newFixture(t)
	ctx := ctxFor(t)
	calls := map[string]func() error{
		"WaitProcess": func() error {
			_, err := f.client.WaitProcess(ctx, &agentpb.WaitProcessRequest{Id: "nope"})
			return err
		},
		"SignalProcess": func() error {
			_, err := f.client.SignalProcess(ctx, &agentpb.SignalProcessRequest{Id: "nope", Signal: 15})
			return err
		},
		"InspectProcess": func() error {
			_, err := f.client.InspectProcess(ctx, &agentpb.InspectProcessRequest{Id: "nope"})
			return err
		},
		"ResizeTTY": func() error {
			_, err := f.client.ResizeTTY(ctx, &agentpb.ResizeTTYRequest{Id: "nope", Rows: 1, Cols: 1})
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) { wantCode(t, call(), codes.NotFound, "nope") })
	}
	// Removing what is not there succeeds: a retried remove must not fail.
	if _, err := f.client.RemoveProcess(ctx, &agentpb.RemoveProcessRequest{Id: "nope"}); err != nil {
		t.Errorf("RemoveProcess: %v", err)
	}
	// A malformed id is InvalidArgument everywhere.
	_, err := f.client.WaitProcess(ctx, &agentpb.WaitProcessRequest{Id: "../x"})
	wantCode(t, err, codes.InvalidArgument, "id")
	_, err = f.client.RemoveProcess(ctx, &agentpb.RemoveProcessRequest{Id: ""})
	wantCode(t, err, codes.InvalidArgument, "id")
}

func TestRemoveWhileRunning(t *testing.T) {
	f := newFixture(t)
	f.mustStart(t, &agentpb.StartProcessRequest{Id: "busy", Args: []string{"sleep", "100"}})
	_, err := f.client.RemoveProcess(ctxFor(t), &agentpb.RemoveProcessRequest{Id: "busy"})
	wantCode(t, err, codes.FailedPrecondition, "running")
	if _, err := f.client.SignalProcess(ctxFor(t), &agentpb.SignalProcessRequest{Id: "busy", Signal: 9}); err != nil {
		t.Fatal(err)
	}
	f.wait(t, "busy")
	f.remove(t, "busy")
	_, err = f.client.InspectProcess(ctxFor(t), &agentpb.InspectProcessRequest{Id: "busy"})
	wantCode(t, err, codes.NotFound, "busy")
}
