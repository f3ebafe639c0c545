package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// errHostGone is what the agent's end of a stream sees once the test breaks
// it, as a stream of a host session that ended: any error but io.EOF.
var errHostGone = errors.New("host session ended")

// breakStream breaks the stream the way a host that went away does: the
// agent's reads and writes on it fail with errHostGone.
func (p *pipeEnd) breakStream() {
	_ = p.r.CloseWithError(errHostGone)
	_ = p.w.CloseWithError(errHostGone)
}

// collectAcked collects an output like collect, acknowledging each read as
// a host that asked for ack_output does. Bytes whose acknowledgement fails
// are not kept: the agent sends them again.
func collectAcked(p *pipeEnd) *collector {
	c := &collector{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		b := make([]byte, 4096)
		var read uint64
		for {
			n, err := p.Read(b)
			if n > 0 {
				var ack [ackSize]byte
				binary.BigEndian.PutUint64(ack[:], read+uint64(n))
				if _, werr := p.Write(ack[:]); werr != nil {
					return
				}
				read += uint64(n)
				c.mu.Lock()
				c.buf.Write(b[:n])
				c.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	return c
}

// hostEnds are a test host's ends of a process's streams, before anything
// reads them.
type hostEnds struct {
	stdin, stdout, stderr *pipeEnd
}

// open opens the streams a request asks for, as the host does before the
// call.
func (f *fixture) open(id string, stdin, stdout, stderr bool) hostEnds {
	var h hostEnds
	if stdin {
		h.stdin = f.broker.open(id, StreamStdin)
	}
	if stdout {
		h.stdout = f.broker.open(id, StreamStdout)
	}
	if stderr {
		h.stderr = f.broker.open(id, StreamStderr)
	}
	return h
}

// reader collects an output stream, acknowledging it or not.
func reader(p *pipeEnd, acks bool) *collector {
	if p == nil {
		return nil
	}
	if acks {
		return collectAcked(p)
	}
	return collect(p)
}

// reattach opens fresh streams for req and calls AttachStdio, as a host
// that reconnected does.
func (f *fixture) reattach(t *testing.T, req *agentpb.AttachStdioRequest) (*hostStreams, *agentpb.AttachStdioResponse) {
	t.Helper()
	h := f.open(req.Id, req.Stdin, req.Stdout, req.Stderr)
	resp, err := f.client.AttachStdio(ctxFor(t), req)
	if err != nil {
		t.Fatalf("AttachStdio(%s): %v", req.Id, err)
	}
	return &hostStreams{stdin: h.stdin, stdout: reader(h.stdout, req.AckOutput), stderr: reader(h.stderr, req.AckOutput)}, resp
}

// numbered returns lines "line 0" to "line n-1".
func numbered(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

// counter is a script printing numbered(n), a line every 10 ms, on stdout
// and, with -e, the same on stderr.
func counter(n int) string {
	return fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "line $i"; [ "$1" = -e ] && echo "line $i" >&2; i=$((i+1)); sleep 0.01; done`, n)
}

// TestAttachAfterBrokenStreams breaks the output streams of a process that
// keeps printing, as a daemon restart does, and re-attaches: what was
// printed meanwhile arrives first, in order, then the rest, with nothing
// missing or repeated. With acknowledgements, what the first host read but
// never acknowledged is sent again too.
func TestAttachAfterBrokenStreams(t *testing.T) {
	for _, acks := range []bool{false, true} {
		t.Run(fmt.Sprintf("acks=%v", acks), func(t *testing.T) {
			f := newFixture(t)
			const n = 80
			h := f.open("count", false, true, true)
			out, errOut := reader(h.stdout, acks), reader(h.stderr, acks)
			if _, err := f.client.StartProcess(ctxFor(t), asMe(&agentpb.StartProcessRequest{
				Id: "count", Args: []string{"/bin/sh", "-c", counter(n), "sh", "-e"},
				Stdout: true, Stderr: true, AckOutput: acks})); err != nil {
				t.Fatal(err)
			}
			if !eventually(10*time.Second, func() bool { return strings.Count(out.String(), "\n") >= 10 }) {
				t.Fatalf("no output: %q", out.String())
			}
			h.stdout.breakStream()
			h.stderr.breakStream()
			first, firstErr := out.wait(t), errOut.wait(t)
			time.Sleep(200 * time.Millisecond) // the process prints on, to no host

			hs, resp := f.reattach(t, &agentpb.AttachStdioRequest{Id: "count", Stdout: true, Stderr: true, AckOutput: acks})
			if resp.Stdin || !resp.Stdout || !resp.Stderr || resp.Terminal || resp.AckOutput != acks {
				t.Errorf("response %v", resp)
			}
			if w := f.wait(t, "count"); w.ExitCode != 0 {
				t.Errorf("exit %d", w.ExitCode)
			}
			want := numbered(n)
			if got := first + hs.stdout.wait(t); got != want {
				t.Errorf("stdout across the re-attach:\n%q\nwant\n%q", got, want)
			}
			if got := firstErr + hs.stderr.wait(t); got != want {
				t.Errorf("stderr across the re-attach:\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// TestAttachResendsUnacknowledged checks that output the host read but did
// not acknowledge before it went away is sent again.
func TestAttachResendsUnacknowledged(t *testing.T) {
	f := newFixture(t)
	h := f.open("unacked", false, true, false)
	gate := filepath.Join(t.TempDir(), "go")
	if _, err := f.client.StartProcess(ctxFor(t), asMe(&agentpb.StartProcessRequest{
		Id:     "unacked",
		Args:   []string{"/bin/sh", "-c", `echo one; while [ ! -e "$0" ]; do sleep 0.01; done; echo two`, gate},
		Stdout: true, AckOutput: true})); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64)
	n, err := h.stdout.Read(b)
	if err != nil || string(b[:n]) != "one\n" {
		t.Fatalf("read %q, %v", b[:n], err)
	}
	h.stdout.breakStream() // before acknowledging "one"
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	hs, _ := f.reattach(t, &agentpb.AttachStdioRequest{Id: "unacked", Stdout: true, AckOutput: true})
	f.wait(t, "unacked")
	if got := hs.stdout.wait(t); got != "one\ntwo\n" {
		t.Errorf("stdout %q, want the unacknowledged line again", got)
	}
}

// TestAttachKeepsNewestOutput lets a process with no host attached write
// more than the agent keeps: it is not blocked, WaitProcess returns, and a
// host attaching afterwards gets the newest maxBufferedOutput bytes, then
// EOF.
func TestAttachKeepsNewestOutput(t *testing.T) {
	seq, err := exec.LookPath("seq")
	if err != nil {
		t.Skip("needs seq")
	}
	const count = 800000
	full, err := exec.Command(seq, "1", fmt.Sprint(count)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if len(full) <= maxBufferedOutput {
		t.Fatalf("output of %d bytes does not overflow", len(full))
	}
	f := newFixture(t)
	gate := filepath.Join(t.TempDir(), "go")
	h := f.open("flood", false, true, false)
	if _, err := f.client.StartProcess(ctxFor(t), asMe(&agentpb.StartProcessRequest{
		Id:     "flood",
		Args:   []string{"/bin/sh", "-c", `while [ ! -e "$0" ]; do sleep 0.01; done; exec seq 1 ` + fmt.Sprint(count), gate},
		Stdout: true, AckOutput: true})); err != nil {
		t.Fatal(err)
	}
	h.stdout.breakStream()
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if w := f.wait(t, "flood"); w.ExitCode != 0 {
		t.Fatalf("exit %d", w.ExitCode)
	}
	hs, _ := f.reattach(t, &agentpb.AttachStdioRequest{Id: "flood", Stdout: true, AckOutput: true})
	got := hs.stdout.wait(t)
	want := string(full[len(full)-maxBufferedOutput:])
	if got != want {
		t.Errorf("got %d bytes starting %q, want the last %d bytes starting %q",
			len(got), truncate(got, 20), len(want), truncate(want, 20))
	}
}

// TestAttachAfterExit re-attaches to a process that exited while no host
// was attached: its output arrives, then EOF, on each stream.
func TestAttachAfterExit(t *testing.T) {
	f := newFixture(t)
	h := f.open("gone", false, true, true)
	gate := filepath.Join(t.TempDir(), "go")
	if _, err := f.client.StartProcess(ctxFor(t), asMe(&agentpb.StartProcessRequest{
		Id:     "gone",
		Args:   []string{"/bin/sh", "-c", `while [ ! -e "$0" ]; do sleep 0.01; done; echo out; echo err >&2; exit 3`, gate},
		Stdout: true, Stderr: true})); err != nil {
		t.Fatal(err)
	}
	h.stdout.breakStream()
	h.stderr.breakStream()
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if w := f.wait(t, "gone"); w.ExitCode != 3 {
		t.Fatalf("exit %d", w.ExitCode)
	}
	hs, _ := f.reattach(t, &agentpb.AttachStdioRequest{Id: "gone", Stdout: true, Stderr: true})
	if got := hs.stdout.wait(t); got != "out\n" {
		t.Errorf("stdout %q", got)
	}
	if got := hs.stderr.wait(t); got != "err\n" {
		t.Errorf("stderr %q", got)
	}
	// Attached again, the output is gone: it was delivered.
	hs, _ = f.reattach(t, &agentpb.AttachStdioRequest{Id: "gone", Stdout: true})
	if got := hs.stdout.wait(t); got != "" {
		t.Errorf("stdout delivered twice: %q", got)
	}
}

// TestStdinSurvivesBrokenStream breaks the stdin stream of cat: cat keeps
// its stdin open and reads what the next host sends, until that host
// half-closes the stream. Removing the process afterwards leaves nothing
// behind.
func TestStdinSurvivesBrokenStream(t *testing.T) {
	f := newFixture(t)
	baseG, baseFDs := f.baseline(t)
	hs := f.mustStart(t, &agentpb.StartProcessRequest{Id: "cat", Args: []string{"cat"}, Stdin: true, Stdout: true})
	if _, err := hs.stdin.Write([]byte("one\n")); err != nil {
		t.Fatal(err)
	}
	if !eventually(5*time.Second, func() bool { return hs.stdout.String() == "one\n" }) {
		t.Fatalf("stdout %q", hs.stdout.String())
	}
	hs.stdin.breakStream()
	time.Sleep(200 * time.Millisecond)
	pi, err := f.client.InspectProcess(ctxFor(t), &agentpb.InspectProcessRequest{Id: "cat"})
	if err != nil || !pi.Running {
		t.Fatalf("cat ended when its stdin stream broke: %v, %v", pi, err)
	}
	if !pi.Stdin || !pi.Stdout || pi.Stderr {
		t.Errorf("streams in %v", pi)
	}

	hs2, resp := f.reattach(t, &agentpb.AttachStdioRequest{Id: "cat", Stdin: true, Stdout: true})
	if !resp.Stdin || !resp.Stdout || resp.Stderr {
		t.Errorf("response %v", resp)
	}
	// The stdout stream it replaced is closed.
	if got := hs.stdout.wait(t); got != "one\n" {
		t.Errorf("first stdout %q", got)
	}
	if _, err := hs2.stdin.Write([]byte("two\n")); err != nil {
		t.Fatal(err)
	}
	if err := hs2.stdin.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if w := f.wait(t, "cat"); w.ExitCode != 0 {
		t.Errorf("exit %d", w.ExitCode)
	}
	if got := hs2.stdout.wait(t); got != "two\n" {
		t.Errorf("stdout after re-attach %q", got)
	}
	f.remove(t, "cat")
	settled(t, baseG, baseFDs)
}

// TestAttachReplacesLiveStreams attaches new streams while the old ones
// still work: the old ones are closed, the new ones carry the rest.
func TestAttachReplacesLiveStreams(t *testing.T) {
	f := newFixture(t)
	const n = 60
	req := shell("live", counter(n))
	req.Stdout = true
	hs := f.mustStart(t, req)
	if !eventually(10*time.Second, func() bool { return strings.Count(hs.stdout.String(), "\n") >= 5 }) {
		t.Fatalf("no output: %q", hs.stdout.String())
	}
	hs2, _ := f.reattach(t, &agentpb.AttachStdioRequest{Id: "live", Stdout: true})
	hs.stdout.wait(t)
	f.wait(t, "live")
	if got := hs2.stdout.wait(t); !strings.HasSuffix(got, fmt.Sprintf("line %d\n", n-1)) {
		t.Errorf("new stream got %q", got)
	}
}

func TestAttachErrors(t *testing.T) {
	f := newFixture(t)
	req := shell("plain", "exec sleep 100")
	req.Stdout = true
	f.mustStart(t, req)
	f.mustStart(t, &agentpb.StartProcessRequest{Id: "tty", Args: []string{"sleep", "100"}, Terminal: true, Stdout: true})
	defer func() {
		for _, id := range []string{"plain", "tty"} {
			_, _ = f.client.SignalProcess(ctxFor(t), &agentpb.SignalProcessRequest{Id: id, Signal: 9})
			f.wait(t, id)
		}
	}()
	tests := []struct {
		req     *agentpb.AttachStdioRequest
		code    codes.Code
		mention string
	}{
		{&agentpb.AttachStdioRequest{Id: "nope", Stdout: true}, codes.NotFound, "nope"},
		{&agentpb.AttachStdioRequest{Id: "-bad", Stdout: true}, codes.InvalidArgument, "id"},
		{&agentpb.AttachStdioRequest{Id: "plain", Stdin: true}, codes.FailedPrecondition, "stdin"},
		{&agentpb.AttachStdioRequest{Id: "plain", Stdout: true, Stderr: true}, codes.FailedPrecondition, "stderr"},
		{&agentpb.AttachStdioRequest{Id: "tty", Stderr: true}, codes.FailedPrecondition, "stderr"},
	}
	for _, tt := range tests {
		_, err := f.client.AttachStdio(ctxFor(t), tt.req)
		wantCode(t, err, tt.code, tt.mention)
	}
	// Streams the host did not open in time fail like at start.
	f2 := newFixture(t, func(c *Config) { c.StdioTimeout = 100 * time.Millisecond })
	req = shell("late", "exec sleep 100")
	req.Stdout = true
	f2.mustStart(t, req)
	_, err := f2.client.AttachStdio(ctxFor(t), &agentpb.AttachStdioRequest{Id: "late", Stdout: true})
	wantCode(t, err, codes.FailedPrecondition, "stdout")
	_, _ = f2.client.SignalProcess(ctxFor(t), &agentpb.SignalProcessRequest{Id: "late", Signal: 9})
	f2.wait(t, "late")
}

func TestOutputBuffer(t *testing.T) {
	var b outputBuffer
	if n := b.write([]byte("abcdef"), 4); n != 2 || string(b.data) != "cdef" || b.start != 2 {
		t.Fatalf("after overflow: dropped %d, %q from %d", n, b.data, b.start)
	}
	b.discard(1) // already gone
	b.discard(4)
	if string(b.data) != "ef" || b.start != 4 || b.end() != 6 {
		t.Fatalf("after discard: %q from %d", b.data, b.start)
	}
	p := make([]byte, 8)
	if n := b.read(5, p); string(p[:n]) != "f" {
		t.Fatalf("read from 5: %q", p[:n])
	}
	b.discard(100)
	if b.len() != 0 || b.data != nil || b.start != 6 {
		t.Fatalf("after discarding everything: %q from %d", b.data, b.start)
	}
}
