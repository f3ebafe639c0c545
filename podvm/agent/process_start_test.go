package agent

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

func TestStdoutStderrSplit(t *testing.T) {
	f := newFixture(t)
	req := shell("split", "echo out; echo err >&2; exit 3")
	req.Stdout, req.Stderr = true, true
	hs := f.mustStart(t, req)
	resp := f.wait(t, "split")
	if resp.ExitCode != 3 || resp.Signal != 0 {
		t.Errorf("exit %d signal %d, want 3 0", resp.ExitCode, resp.Signal)
	}
	if got := hs.stdout.wait(t); got != "out\n" {
		t.Errorf("stdout %q, want %q", got, "out\n")
	}
	if got := hs.stderr.wait(t); got != "err\n" {
		t.Errorf("stderr %q, want %q", got, "err\n")
	}
	if resp.StartedUnixNano == 0 || resp.ExitedUnixNano < resp.StartedUnixNano {
		t.Errorf("times started %d exited %d", resp.StartedUnixNano, resp.ExitedUnixNano)
	}
}

func TestExitCodes(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		script       string
		code, signal int32
	}{
		{"exit 0", 0, 0},
		{"exit 42", 42, 0},
		{"kill -KILL $$", 137, 9},
		{"kill -TERM $$", 143, 15},
	}
	for i, tt := range tests {
		t.Run(tt.script, func(t *testing.T) {
			id := "exit" + string(rune('a'+i))
			f.mustStart(t, shell(id, tt.script))
			resp := f.wait(t, id)
			if resp.ExitCode != tt.code || resp.Signal != tt.signal {
				t.Errorf("exit %d signal %d, want %d %d", resp.ExitCode, resp.Signal, tt.code, tt.signal)
			}
		})
	}
}

func TestStdinRoundTrip(t *testing.T) {
	f := newFixture(t)
	hs := f.mustStart(t, &agentpb.StartProcessRequest{Id: "cat", Args: []string{"cat"}, Stdin: true, Stdout: true})
	if _, err := hs.stdin.Write([]byte("hello\nworld\n")); err != nil {
		t.Fatal(err)
	}
	if err := hs.stdin.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if resp := f.wait(t, "cat"); resp.ExitCode != 0 {
		t.Errorf("exit %d", resp.ExitCode)
	}
	if got := hs.stdout.wait(t); got != "hello\nworld\n" {
		t.Errorf("stdout %q", got)
	}
}

// TestUnrequestedStreams checks that stdio the host did not ask for is
// /dev/null: stdin reads EOF at once.
func TestUnrequestedStreams(t *testing.T) {
	f := newFixture(t)
	f.mustStart(t, shell("devnull", "read x || exit 5"))
	if resp := f.wait(t, "devnull"); resp.ExitCode != 5 {
		t.Errorf("exit %d, want 5", resp.ExitCode)
	}
}

func TestCwdEnvAndPath(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		req  *agentpb.StartProcessRequest
		want string
	}{
		{"cwd", &agentpb.StartProcessRequest{Args: []string{"pwd"}, Cwd: "/tmp"}, "/tmp\n"},
		{"default cwd", &agentpb.StartProcessRequest{Args: []string{"pwd"}}, "/\n"},
		{"env only from request", &agentpb.StartProcessRequest{
			Args: []string{"/bin/sh", "-c", `echo "$A|$HOME"`}, Env: []string{"A=b=c"}}, "b=c|\n"},
		{"PATH from env", &agentpb.StartProcessRequest{
			Args: []string{"echo", "hi"}, Env: []string{"PATH=/nonexistent:/usr/bin:/bin"}}, "hi\n"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Id = "env" + string(rune('a'+i))
			tt.req.Stdout = true
			hs := f.mustStart(t, tt.req)
			f.wait(t, tt.req.Id)
			if got := hs.stdout.wait(t); got != tt.want {
				t.Errorf("stdout %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStartFailures(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name    string
		req     *agentpb.StartProcessRequest
		code    codes.Code
		mention string
	}{
		{"not in PATH", &agentpb.StartProcessRequest{Args: []string{"sh"}, Env: []string{"PATH=/nonexistent"}},
			codes.NotFound, "args[0]"},
		{"missing executable", &agentpb.StartProcessRequest{Args: []string{"/nonexistent/x"}},
			codes.NotFound, "/nonexistent/x"},
		{"missing cwd", &agentpb.StartProcessRequest{Args: []string{"/bin/true"}, Cwd: "/nonexistent"},
			codes.NotFound, "/nonexistent"},
		{"not executable", &agentpb.StartProcessRequest{Args: []string{"/etc/hostname"}},
			codes.FailedPrecondition, "/etc/hostname"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Id = "fail"
			tt.req.Stdout = true
			hs, err := f.start(t, tt.req)
			wantCode(t, err, tt.code, tt.mention)
			// The stream the host opened is closed, so its reader ends.
			hs.stdout.wait(t)
			// The id is free again.
			if _, err := f.client.InspectProcess(ctxFor(t), &agentpb.InspectProcessRequest{Id: "fail"}); err == nil {
				t.Error("failed process is listed")
			}
		})
	}
}

func TestStdioTimeout(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.StdioTimeout = 100 * time.Millisecond })
	_, err := f.client.StartProcess(ctxFor(t), asMe(&agentpb.StartProcessRequest{Id: "nostream", Args: []string{"/bin/true"}, Stdout: true}))
	wantCode(t, err, codes.FailedPrecondition, "stdout")
	// A retry with the stream in place works.
	hs := f.mustStart(t, &agentpb.StartProcessRequest{Id: "nostream", Args: []string{"echo", "x"}, Stdout: true})
	f.wait(t, "nostream")
	if got := hs.stdout.wait(t); got != "x\n" {
		t.Errorf("stdout %q", got)
	}
}

func TestDuplicateID(t *testing.T) {
	f := newFixture(t)
	f.mustStart(t, &agentpb.StartProcessRequest{Id: "dup", Args: []string{"sleep", "100"}})
	_, err := f.start(t, &agentpb.StartProcessRequest{Id: "dup", Args: []string{"/bin/true"}})
	wantCode(t, err, codes.AlreadyExists, "dup")
	// Still AlreadyExists after the exit, until removed.
	if _, err := f.client.SignalProcess(ctxFor(t), &agentpb.SignalProcessRequest{Id: "dup", Signal: 9}); err != nil {
		t.Fatal(err)
	}
	f.wait(t, "dup")
	_, err = f.start(t, &agentpb.StartProcessRequest{Id: "dup", Args: []string{"/bin/true"}})
	wantCode(t, err, codes.AlreadyExists, "dup")
	f.remove(t, "dup")
	f.mustStart(t, &agentpb.StartProcessRequest{Id: "dup", Args: []string{"/bin/true"}})
	f.wait(t, "dup")
}

func TestMaxProcesses(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxProcesses = 2 })
	f.mustStart(t, &agentpb.StartProcessRequest{Id: "a", Args: []string{"/bin/true"}})
	f.mustStart(t, &agentpb.StartProcessRequest{Id: "b", Args: []string{"/bin/true"}})
	_, err := f.start(t, &agentpb.StartProcessRequest{Id: "c", Args: []string{"/bin/true"}})
	wantCode(t, err, codes.ResourceExhausted, "limit")
	f.wait(t, "a")
	f.remove(t, "a")
	f.mustStart(t, &agentpb.StartProcessRequest{Id: "c", Args: []string{"/bin/true"}})
	f.wait(t, "b")
	f.wait(t, "c")
}

func TestCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing credentials needs root")
	}
	f := newFixture(t)
	req := &agentpb.StartProcessRequest{Id: "creds", Args: []string{"/bin/sh", "-c", "id -u; id -g; id -G"},
		Uid: 65534, Gid: 65533, AdditionalGids: []uint32{100, 200}, Stdout: true}
	hs := f.mustStart(t, req)
	f.wait(t, "creds")
	if got, want := hs.stdout.wait(t), "65534\n65533\n65533 100 200\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
}

// TestBackgroundHolder checks that WaitProcess does not wait for a
// descendant that keeps stdout open after the process exited.
func TestBackgroundHolder(t *testing.T) {
	f := newFixture(t)
	req := shell("bg", "sleep 30 & echo $!")
	req.Stdout = true
	hs := f.mustStart(t, req)
	start := time.Now()
	f.wait(t, "bg")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("WaitProcess took %v", d)
	}
	out := strings.TrimSpace(hs.stdout.wait(t))
	killPID(t, out)
}

// TestRemoveAbortsCopy checks that removing an exited process whose output
// the host never read ends the copy and frees everything.
func TestRemoveAbortsCopy(t *testing.T) {
	f := newFixture(t)
	// The host never reads stdout: the process fills the pipe and blocks.
	f.broker.open("flood", StreamStdout)
	baseG, baseFDs := f.baseline(t)
	if _, err := f.client.StartProcess(ctxFor(t), asMe(&agentpb.StartProcessRequest{
		Id: "flood", Args: []string{"/bin/sh", "-c", "yes"}, Stdout: true})); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.SignalProcess(ctxFor(t), &agentpb.SignalProcessRequest{Id: "flood", Signal: 9}); err != nil {
		t.Fatal(err)
	}
	ok := eventually(5*time.Second, func() bool {
		pi, err := f.client.InspectProcess(ctxFor(t), &agentpb.InspectProcessRequest{Id: "flood"})
		return err == nil && !pi.Running
	})
	if !ok {
		t.Fatal("process did not exit")
	}
	f.remove(t, "flood")
	settled(t, baseG, baseFDs)
}

// TestNetConnStreams uses streams without CloseWrite (net.Pipe), which the
// service must close instead of half-closing.
func TestNetConnStreams(t *testing.T) {
	f := newFixture(t)
	hostOut, agentOut := net.Pipe()
	hostIn, agentIn := net.Pipe()
	f.broker.slot("netpipe", StreamStdout) <- agentOut
	f.broker.slot("netpipe", StreamStdin) <- agentIn
	out := collect(hostOut)
	if _, err := f.client.StartProcess(ctxFor(t), asMe(&agentpb.StartProcessRequest{
		Id: "netpipe", Args: []string{"/bin/sh", "-c", "read line; echo got $line"}, Stdin: true, Stdout: true})); err != nil {
		t.Fatal(err)
	}
	if _, err := hostIn.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	f.wait(t, "netpipe")
	if got := out.wait(t); got != "got ping\n" {
		t.Errorf("stdout %q", got)
	}
	// The agent closed the stdin stream once the process was done, although
	// the host never did.
	if _, err := hostIn.Read(make([]byte, 1)); err == nil {
		t.Error("stdin stream still open")
	}
}
