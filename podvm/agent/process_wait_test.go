package agent

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

func TestWaitHonoursDeadline(t *testing.T) {
	f := newFixture(t)
	f.mustStart(t, &agentpb.StartProcessRequest{Id: "long", Args: []string{"sleep", "100"}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := f.client.WaitProcess(ctx, &agentpb.WaitProcessRequest{Id: "long"})
	wantCode(t, err, codes.DeadlineExceeded, "")
	if _, err := f.client.SignalProcess(ctxFor(t), &agentpb.SignalProcessRequest{Id: "long", Signal: 9}); err != nil {
		t.Fatal(err)
	}
	f.wait(t, "long")
}

// TestOrphanReaped checks that a background child left behind by a process
// is re-parented to the agent (here a subreaper) and reaped, not left a
// zombie.
func TestOrphanReaped(t *testing.T) {
	f := newFixture(t)
	req := shell("orphaner", "sleep 1 >/dev/null & echo $!; exit 0")
	req.Stdout = true
	hs := f.mustStart(t, req)
	f.wait(t, "orphaner")
	pid, err := strconv.Atoi(strings.TrimSpace(hs.stdout.wait(t)))
	if err != nil {
		t.Fatal(err)
	}
	if _, ppid, _ := procStat(pid); ppid != os.Getpid() {
		t.Errorf("orphan %d has parent %d, want the agent", pid, ppid)
	}
	if !eventually(5*time.Second, func() bool { _, _, ok := procStat(pid); return !ok }) {
		state, _, _ := procStat(pid)
		t.Errorf("orphan %d still present, state %c", pid, state)
	}
	for child, state := range children() {
		if state == 'Z' {
			t.Errorf("zombie child %d", child)
		}
	}
}
