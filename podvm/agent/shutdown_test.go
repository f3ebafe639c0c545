package agent

import (
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

func TestShutdown(t *testing.T) {
	var calls atomic.Int32
	powered := make(chan struct{})
	f := newFixture(t, func(c *Config) {
		c.PowerOff = func() error {
			if calls.Add(1) == 1 {
				close(powered)
			}
			return nil
		}
	})
	if _, err := f.client.Shutdown(ctxFor(t), &agentpb.Empty{}); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("powered off before the reply arrived (%d calls)", n)
	}
	select {
	case <-powered:
	case <-time.After(5 * time.Second):
		t.Fatal("PowerOff not called")
	}
	// A second Shutdown replies and does not power off twice.
	if _, err := f.client.Shutdown(ctxFor(t), &agentpb.Empty{}); err != nil {
		t.Fatal(err)
	}
	_, err := f.client.StartProcess(ctxFor(t), &agentpb.StartProcessRequest{Id: "late", Args: []string{"/bin/true"}})
	wantCode(t, err, codes.FailedPrecondition, "shutting down")
	time.Sleep(2 * shutdownFlushDelay)
	if n := calls.Load(); n != 1 {
		t.Errorf("PowerOff called %d times", n)
	}
}
