package agent

import (
	"context"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
	"github.com/podvisor/podvisor/podvm/agent/reaper"
)

// testReaper is the test binary's only reaper (a second one would steal
// statuses); it makes the test process a child subreaper.
var testReaper *reaper.Reaper

func TestMain(m *testing.M) {
	r, err := reaper.New()
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go r.Run(ctx)
	testReaper = r
	code := m.Run()
	cancel()
	os.Exit(code)
}

// fakeBroker is a StdioBroker whose streams the test opens with open.
type fakeBroker struct {
	mu    sync.Mutex
	slots map[string]chan io.ReadWriteCloser
}

func newFakeBroker() *fakeBroker {
	return &fakeBroker{slots: make(map[string]chan io.ReadWriteCloser)}
}

func (b *fakeBroker) slot(id string, kind StreamKind) chan io.ReadWriteCloser {
	b.mu.Lock()
	defer b.mu.Unlock()
	key := id + "/" + kind.String()
	ch, ok := b.slots[key]
	if !ok {
		ch = make(chan io.ReadWriteCloser, 1)
		b.slots[key] = ch
	}
	return ch
}

func (b *fakeBroker) Take(ctx context.Context, id string, kind StreamKind) (io.ReadWriteCloser, error) {
	select {
	case s := <-b.slot(id, kind):
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// open registers the agent's end of a new stream and returns the host's.
func (b *fakeBroker) open(id string, kind StreamKind) *pipeEnd {
	host, agent := streamPair()
	b.slot(id, kind) <- agent
	return host
}

// pipeEnd is one end of an in-memory full-duplex stream that, like a yamux
// stream, can be half-closed.
type pipeEnd struct {
	r *io.PipeReader
	w *io.PipeWriter
}

func streamPair() (a, b *pipeEnd) {
	r1, w1 := io.Pipe()
	r2, w2 := io.Pipe()
	return &pipeEnd{r: r1, w: w2}, &pipeEnd{r: r2, w: w1}
}

func (p *pipeEnd) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeEnd) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *pipeEnd) CloseWrite() error           { return p.w.Close() }
func (p *pipeEnd) Close() error {
	_ = p.r.Close()
	return p.w.Close()
}

type fixture struct {
	svc    *Service
	client agentpb.AgentClient
	broker *fakeBroker
}

type fixtureOpt func(*Config)

// newFixture serves a Service over an in-memory gRPC connection.
func newFixture(t *testing.T, opts ...fixtureOpt) *fixture {
	t.Helper()
	broker := newFakeBroker()
	cfg := Config{
		Reaper:   testReaper,
		Broker:   broker,
		PowerOff: func() error { t.Error("unexpected power off"); return nil },
		Version:  "test-version",
	}
	for _, o := range opts {
		o(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(ServerOptions()...)
	agentpb.RegisterAgentServer(srv, svc)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///agent",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
	})
	return &fixture{svc: svc, client: agentpb.NewAgentClient(conn), broker: broker}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// hostStreams are the test's ends of a process's streams, with the outputs
// collected in the background.
type hostStreams struct {
	stdin          *pipeEnd
	stdout, stderr *collector
}

type collector struct {
	mu   sync.Mutex
	buf  strings.Builder
	done chan struct{}
}

func collect(r io.Reader) *collector {
	c := &collector{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			c.mu.Lock()
			c.buf.Write(b[:n])
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return c
}

func (c *collector) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// wait returns everything once the stream has ended.
func (c *collector) wait(t *testing.T) string {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("stream did not end; got so far %q", c.String())
	}
	return c.String()
}

// start opens the streams req asks for and starts the process.
func (f *fixture) start(t *testing.T, req *agentpb.StartProcessRequest) (*hostStreams, error) {
	t.Helper()
	hs := &hostStreams{}
	if req.Stdin {
		hs.stdin = f.broker.open(req.Id, StreamStdin)
	}
	if req.Stdout {
		hs.stdout = collect(f.broker.open(req.Id, StreamStdout))
	}
	if req.Stderr {
		hs.stderr = collect(f.broker.open(req.Id, StreamStderr))
	}
	_, err := f.client.StartProcess(ctxFor(t), asMe(req))
	return hs, err
}

// asMe makes a request that leaves the credentials at zero run as the test's
// own user, so that the tests also pass unprivileged.
func asMe(req *agentpb.StartProcessRequest) *agentpb.StartProcessRequest {
	if req.Uid == 0 && req.Gid == 0 {
		req.Uid, req.Gid = uint32(os.Getuid()), uint32(os.Getgid())
	}
	return req
}

func (f *fixture) mustStart(t *testing.T, req *agentpb.StartProcessRequest) *hostStreams {
	t.Helper()
	hs, err := f.start(t, req)
	if err != nil {
		t.Fatalf("StartProcess(%s): %v", req.Id, err)
	}
	return hs
}

func (f *fixture) wait(t *testing.T, id string) *agentpb.WaitProcessResponse {
	t.Helper()
	resp, err := f.client.WaitProcess(ctxFor(t), &agentpb.WaitProcessRequest{Id: id})
	if err != nil {
		t.Fatalf("WaitProcess(%s): %v", id, err)
	}
	return resp
}

func (f *fixture) remove(t *testing.T, id string) {
	t.Helper()
	if _, err := f.client.RemoveProcess(ctxFor(t), &agentpb.RemoveProcessRequest{Id: id}); err != nil {
		t.Fatalf("RemoveProcess(%s): %v", id, err)
	}
}

func shell(id, script string) *agentpb.StartProcessRequest {
	return &agentpb.StartProcessRequest{Id: id, Args: []string{"/bin/sh", "-c", script}}
}

func wantCode(t *testing.T, err error, code codes.Code, mention string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Fatalf("error %v: code %v, want %v", err, st.Code(), code)
	}
	if !strings.Contains(st.Message(), mention) {
		t.Fatalf("error message %q does not mention %q", st.Message(), mention)
	}
}

// eventually polls cond until it holds or timeout passes.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// children returns the PIDs and states of the test process's children.
func children() map[int]byte {
	out := map[int]byte{}
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, ppid, ok := procStat(pid); ok && ppid == self {
			out[pid] = state
		}
	}
	return out
}

// procStat returns the state and parent of pid.
func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+4 > len(s) {
		return 0, 0, false
	}
	fields := strings.Fields(s[i+2:])
	if len(fields) < 2 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(fields[1])
	return fields[0][0], ppid, err == nil
}

func openFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}

// settled reports whether goroutines and open descriptors are back to base.
func settled(t *testing.T, baseGoroutines, baseFDs int) {
	t.Helper()
	ok := eventually(10*time.Second, func() bool {
		return runtime.NumGoroutine() <= baseGoroutines && openFDs() <= baseFDs
	})
	if !ok {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("goroutines %d (base %d), fds %d (base %d)\n%s",
			runtime.NumGoroutine(), baseGoroutines, openFDs(), baseFDs, buf[:n])
	}
}

// baseline returns the goroutine and descriptor counts once the connection is
// up (it is dialled on the first call).
func (f *fixture) baseline(t *testing.T) (goroutines, fds int) {
	t.Helper()
	if _, err := f.client.ListProcesses(ctxFor(t), &agentpb.Empty{}); err != nil {
		t.Fatal(err)
	}
	return runtime.NumGoroutine(), openFDs()
}

// killPID kills a stray background process a test left behind.
func killPID(t *testing.T, pid string) {
	t.Helper()
	n, err := strconv.Atoi(pid)
	if err != nil || n <= 1 {
		t.Fatalf("bad pid %q", pid)
	}
	_ = syscall.Kill(n, syscall.SIGKILL)
}
