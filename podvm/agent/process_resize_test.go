package agent

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

func TestTerminal(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		req  *agentpb.StartProcessRequest
		want string
	}{
		{"tty", &agentpb.StartProcessRequest{Args: []string{"tty"}}, "/dev/pts/"},
		{"initial size", &agentpb.StartProcessRequest{Args: []string{"stty", "size"}, Rows: 40, Cols: 100}, "40 100"},
		{"controlling terminal", &agentpb.StartProcessRequest{
			Args: []string{"/bin/sh", "-c", "exec </dev/tty && echo ok"}}, "ok"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Id = "tty" + string(rune('a'+i))
			tt.req.Terminal, tt.req.Stdout = true, true
			hs := f.mustStart(t, tt.req)
			if resp := f.wait(t, tt.req.Id); resp.ExitCode != 0 {
				t.Errorf("exit %d, output %q", resp.ExitCode, hs.stdout.String())
			}
			if got := hs.stdout.wait(t); !strings.Contains(got, tt.want) {
				t.Errorf("output %q does not contain %q", got, tt.want)
			}
		})
	}
}

func TestTerminalWithoutStreams(t *testing.T) {
	f := newFixture(t)
	f.mustStart(t, &agentpb.StartProcessRequest{Id: "quiet", Args: []string{"tty"}, Terminal: true})
	if resp := f.wait(t, "quiet"); resp.ExitCode != 0 {
		t.Errorf("exit %d", resp.ExitCode)
	}
}

func TestResizeTTY(t *testing.T) {
	f := newFixture(t)
	hs := f.mustStart(t, &agentpb.StartProcessRequest{
		Id: "resize", Args: []string{"/bin/sh", "-c", "read x; stty size"},
		Terminal: true, Stdin: true, Stdout: true, Rows: 10, Cols: 20,
	})
	if _, err := f.client.ResizeTTY(ctxFor(t), &agentpb.ResizeTTYRequest{Id: "resize", Rows: 50, Cols: 132}); err != nil {
		t.Fatal(err)
	}
	if _, err := hs.stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	f.wait(t, "resize")
	if got := hs.stdout.wait(t); !strings.Contains(got, "50 132") {
		t.Errorf("output %q does not contain the new size", got)
	}
	// After the exit a resize is harmless.
	if _, err := f.client.ResizeTTY(ctxFor(t), &agentpb.ResizeTTYRequest{Id: "resize", Rows: 1, Cols: 1}); err != nil {
		t.Errorf("resize after exit: %v", err)
	}
}

func TestResizeTTYErrors(t *testing.T) {
	f := newFixture(t)
	f.mustStart(t, &agentpb.StartProcessRequest{Id: "plain", Args: []string{"sleep", "100"}})
	defer func() {
		_, _ = f.client.SignalProcess(ctxFor(t), &agentpb.SignalProcessRequest{Id: "plain", Signal: 9})
		f.wait(t, "plain")
	}()
	resize := func(id string, rows, cols uint32) error {
		_, err := f.client.ResizeTTY(ctxFor(t), &agentpb.ResizeTTYRequest{Id: id, Rows: rows, Cols: cols})
		return err
	}
	wantCode(t, resize("plain", 10, 10), codes.FailedPrecondition, "no terminal")
	wantCode(t, resize("plain", 70000, 10), codes.InvalidArgument, "rows")
	wantCode(t, resize("plain", 10, 70000), codes.InvalidArgument, "cols")
	wantCode(t, resize("nope", 10, 10), codes.NotFound, "nope")
}
