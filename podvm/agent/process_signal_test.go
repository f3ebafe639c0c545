package agent

import (
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

func TestSignalProcess(t *testing.T) {
	f := newFixture(t)
	f.mustStart(t, &agentpb.StartProcessRequest{Id: "sleeper", Args: []string{"sleep", "100"}})
	signal := func(sig int32) error {
		_, err := f.client.SignalProcess(ctxFor(t), &agentpb.SignalProcessRequest{Id: "sleeper", Signal: sig})
		return err
	}
	for _, bad := range []int32{0, -1, 65} {
		wantCode(t, signal(bad), codes.InvalidArgument, "signal")
	}
	if err := signal(15); err != nil {
		t.Fatal(err)
	}
	resp := f.wait(t, "sleeper")
	if resp.ExitCode != 128+15 || resp.Signal != 15 {
		t.Errorf("exit %d signal %d, want 143 15", resp.ExitCode, resp.Signal)
	}
	// Stopping an exited process again is fine; other signals are not.
	for _, sig := range []int32{9, 15} {
		if err := signal(sig); err != nil {
			t.Errorf("signal %d after exit: %v", sig, err)
		}
	}
	wantCode(t, signal(1), codes.FailedPrecondition, "exited")
}
