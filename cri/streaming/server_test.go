package streaming

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	clientexec "k8s.io/client-go/util/exec"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const testTimeout = 20 * time.Second

func startServer(t *testing.T, b Backend, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

func parse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func execURL(t *testing.T, s *Server, req *runtimeapi.ExecRequest) *url.URL {
	t.Helper()
	resp, err := s.GetExec(req)
	if err != nil {
		t.Fatal(err)
	}
	return parse(t, resp.Url)
}

// stream runs a client the way crictl and critest do.
func stream(t *testing.T, u *url.URL, opts remotecommand.StreamOptions) error {
	t.Helper()
	e, err := remotecommand.NewSPDYExecutor(&rest.Config{TLSClientConfig: rest.TLSClientConfig{Insecure: true}}, "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return e.StreamWithContext(ctx, opts)
}

// syncBuffer is written by the client's copy goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestExec(t *testing.T) {
	b := &fakeBackend{}
	s := startServer(t, b, DefaultConfig())
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	tests := []struct {
		name       string
		cmd        []string
		stdin      string
		noStdin    bool
		tty        bool
		wantOut    string
		wantErr    string
		wantCode   int
		wantStderr string
	}{
		{name: "success", cmd: []string{"echo", "hello"}, noStdin: true, wantOut: "hello\n"},
		{name: "exit code", cmd: []string{"exit", "3"}, noStdin: true, wantCode: 3},
		{name: "exit code 255", cmd: []string{"exit", "255"}, noStdin: true, wantCode: 255},
		{name: "stderr", cmd: []string{"warn", "oops"}, noStdin: true, wantStderr: "oops\n", wantCode: 1},
		{name: "stdin round trip", cmd: []string{"cat"}, stdin: "line 1\nline 2", wantOut: "line 1\nline 2"},
		{name: "stdin 1 MiB", cmd: []string{"cat"}, stdin: big, wantOut: big},
		{name: "tty merges stderr", cmd: []string{"warn", "on tty"}, noStdin: true, tty: true, wantOut: "on tty\n", wantCode: 1},
		{name: "unknown command", cmd: []string{"nope"}, noStdin: true, wantErr: "executable file not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: tt.cmd, Stdin: !tt.noStdin, Stdout: true, Stderr: !tt.tty, Tty: tt.tty}
			var stdout, stderr syncBuffer
			opts := remotecommand.StreamOptions{Stdout: &stdout, Tty: tt.tty}
			if !tt.tty {
				opts.Stderr = &stderr
			}
			if !tt.noStdin {
				opts.Stdin = strings.NewReader(tt.stdin)
			}
			err := stream(t, execURL(t, s, req), opts)
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
			case tt.wantCode != 0:
				var exitErr clientexec.CodeExitError
				if !errors.As(err, &exitErr) || exitErr.ExitStatus() != tt.wantCode {
					t.Fatalf("error %#v, want exit code %d", err, tt.wantCode)
				}
			case err != nil:
				t.Fatal(err)
			}
			if got := stdout.String(); got != tt.wantOut {
				t.Errorf("stdout %d bytes %.40q, want %d bytes %.40q", len(got), got, len(tt.wantOut), tt.wantOut)
			}
			if got := stderr.String(); got != tt.wantStderr {
				t.Errorf("stderr %q, want %q", got, tt.wantStderr)
			}
		})
	}
}

// TestExecOptionsReachBackend: the backend learns which streams the client
// asked for.
func TestExecOptionsReachBackend(t *testing.T) {
	b := &fakeBackend{}
	s := startServer(t, b, DefaultConfig())
	var stdout syncBuffer
	u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"echo", "a", "b"}, Stdout: true})
	if err := stream(t, u, remotecommand.StreamOptions{Stdout: &stdout}); err != nil {
		t.Fatal(err)
	}
	want := ExecOptions{Cmd: []string{"echo", "a", "b"}, StreamOptions: StreamOptions{Stdout: true}}
	if got := b.execs[0]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("backend got %+v, want %+v", got, want)
	}
	if !b.lastSession().isClosed() {
		t.Fatal("session not closed")
	}
}

// terminalSizes is a client terminal that is resized a few times, then
// stops reporting.
type terminalSizes struct {
	sizes []remotecommand.TerminalSize
	next  int
	done  chan struct{}
}

func (q *terminalSizes) Next() *remotecommand.TerminalSize {
	if q.next == len(q.sizes) {
		<-q.done
		return nil
	}
	q.next++
	return &q.sizes[q.next-1]
}

func TestExecTTYResize(t *testing.T) {
	b := &fakeBackend{}
	s := startServer(t, b, DefaultConfig())
	u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"size"}, Stdin: true, Stdout: true, Tty: true})
	q := &terminalSizes{
		sizes: []remotecommand.TerminalSize{{Width: 80, Height: 24}, {Width: 0, Height: 0}, {Width: 132, Height: 43}},
		done:  make(chan struct{}),
	}
	defer close(q.done)
	var stdout syncBuffer
	stdinR, stdinW := io.Pipe()
	go func() {
		// End input once both sizes came back.
		deadline := time.Now().Add(testTimeout)
		for !strings.Contains(stdout.String(), "43x132") && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		stdinW.Close()
	}()
	err := stream(t, u, remotecommand.StreamOptions{Stdin: stdinR, Stdout: &stdout, Tty: true, TerminalSizeQueue: q})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := stdout.String(), "24x80\n43x132\n"; got != want {
		t.Fatalf("sizes seen by the process: %q, want %q (zero size skipped)", got, want)
	}
}

// TestExecReturnsAtExitWithStdinOpen mirrors critest's tty exec: the client
// keeps stdin open, the command exits, the client must be told.
func TestExecReturnsAtExitWithStdinOpen(t *testing.T) {
	b := &fakeBackend{}
	s := startServer(t, b, DefaultConfig())
	u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"echo", "hello"}, Stdin: true, Stdout: true, Tty: true})
	stdinR, stdinW := io.Pipe()
	defer stdinW.Close()
	var stdout syncBuffer
	if err := stream(t, u, remotecommand.StreamOptions{Stdin: stdinR, Stdout: &stdout, Tty: true}); err != nil {
		t.Fatal(err)
	}
	if got := stdout.String(); got != "hello\n" {
		t.Fatalf("stdout %q", got)
	}
}

// TestExecOutputHeldByBackgroundChild: the process exited but a child keeps
// its stdout open; the client still gets the exit after a bounded drain.
func TestExecOutputHeldByBackgroundChild(t *testing.T) {
	b := &fakeBackend{}
	s := startServer(t, b, DefaultConfig())
	u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"daemon"}, Stdout: true})
	var stdout syncBuffer
	start := time.Now()
	if err := stream(t, u, remotecommand.StreamOptions{Stdout: &stdout}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > drainTimeout+5*time.Second {
		t.Fatalf("took %v", d)
	}
	if got := stdout.String(); got != "started\n" {
		t.Fatalf("stdout %q", got)
	}
}

// TestExecClientGone: a client that stops reading is gone; its process is
// killed rather than left blocked on output.
func TestExecClientGone(t *testing.T) {
	b := &fakeBackend{}
	s := startServer(t, b, DefaultConfig())
	u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"cat"}, Stdin: true, Stdout: true})
	e, err := remotecommand.NewSPDYExecutor(&rest.Config{}, "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stdinR, stdinW := io.Pipe()
	got := make(chan struct{})
	out := writerFunc(func(p []byte) (int, error) {
		select {
		case <-got:
		default:
			close(got)
		}
		return len(p), nil
	})
	done := make(chan error, 1)
	go func() { done <- e.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdinR, Stdout: out}) }()
	// Keep the process writing, then drop the connection.
	go func() {
		for {
			if _, err := stdinW.Write(bytes.Repeat([]byte("x"), 4096)); err != nil {
				return
			}
		}
	}()
	<-got
	cancel()
	<-done
	stdinW.CloseWithError(errors.New("test over"))
	waitFor(t, "session closed", b.lastSession().isClosed)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestExecOverWebsocket(t *testing.T) {
	b := &fakeBackend{}
	s := startServer(t, b, DefaultConfig())
	u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"exit", "7"}, Stdout: true, Stderr: true})
	// Runtimes' streaming servers speak the v4 websocket protocol; v5 is
	// the API server's.
	e, err := remotecommand.NewWebSocketExecutorForProtocols(&rest.Config{}, "GET", u.String(), "v4.channel.k8s.io")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var stdout, stderr syncBuffer
	err = e.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	var exitErr clientexec.CodeExitError
	if !errors.As(err, &exitErr) || exitErr.ExitStatus() != 7 {
		t.Fatalf("error %T %v, want exit code 7", err, err)
	}
}

func TestAttach(t *testing.T) {
	b := &fakeBackend{}
	s := startServer(t, b, DefaultConfig())
	resp, err := s.GetAttach(&runtimeapi.AttachRequest{ContainerId: "ctr", Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	stdinR, stdinW := io.Pipe()
	go func() {
		fmt.Fprintln(stdinW, "echo hello")
		waitFor(t, "answer", func() bool { return stdout.String() != "" })
		// End of input: the StdinOnce shell exits, the attach ends.
		stdinW.Close()
	}()
	if err := stream(t, parse(t, resp.Url), remotecommand.StreamOptions{Stdin: stdinR, Stdout: &stdout, Stderr: &stderr}); err != nil {
		t.Fatal(err)
	}
	if got := stdout.String(); got != "sh: echo hello\n" {
		t.Errorf("stdout %q", got)
	}
	if got := stderr.String(); got != "sh-err: echo hello\n" {
		t.Errorf("stderr %q", got)
	}
	if !b.lastSession().isClosed() {
		t.Error("session not closed")
	}
}

func TestAttachUnknownContainer(t *testing.T) {
	s := startServer(t, &fakeBackend{}, DefaultConfig())
	resp, err := s.GetAttach(&runtimeapi.AttachRequest{ContainerId: "gone", Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	err = stream(t, parse(t, resp.Url), remotecommand.StreamOptions{Stdout: io.Discard})
	if err == nil || !strings.Contains(err.Error(), `container "gone": not found`) {
		t.Fatalf("error %v", err)
	}
}

// forward starts a client-go port forwarder to url and returns the local
// address it listens on.
func forward(t *testing.T, u *url.URL, errOut io.Writer) string {
	t.Helper()
	tr, upgrader, err := spdy.RoundTripperFor(&rest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: tr}, "POST", u)
	stop, ready := make(chan struct{}), make(chan struct{})
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:8080"}, stop, ready, io.Discard, errOut)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	t.Cleanup(func() { close(stop); <-done })
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("port forward: %v", err)
	}
	ports, err := pf.GetPorts()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", ports[0].Local)
}

func TestPortForward(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go echoServer(ln)
	var dialed sync.Map
	b := &fakeBackend{dial: func(sandbox string, port int32) (io.ReadWriteCloser, error) {
		dialed.Store(fmt.Sprintf("%s:%d", sandbox, port), true)
		return net.Dial("tcp", ln.Addr().String())
	}}
	s := startServer(t, b, DefaultConfig())
	resp, err := s.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: "pod1"})
	if err != nil {
		t.Fatal(err)
	}
	local := forward(t, parse(t, resp.Url), io.Discard)

	// Several connections over one forward, data both ways, and the
	// client's half-close reaching the pod.
	payload := bytes.Repeat([]byte("ping "), 50000)
	for i := range 3 {
		c, err := net.Dial("tcp", local)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(testTimeout))
		go func() {
			c.Write(payload)
			c.(*net.TCPConn).CloseWrite()
		}()
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("connection %d: echoed %d bytes, want %d", i, len(got), len(payload))
		}
	}
	if _, ok := dialed.Load("pod1:8080"); !ok {
		t.Fatal("backend not asked for pod1:8080")
	}
}

func TestPortForwardPodClosesFirst(t *testing.T) {
	b := &fakeBackend{dial: func(string, int32) (io.ReadWriteCloser, error) {
		client, pod := net.Pipe()
		go func() {
			pod.Write([]byte("banner\n"))
			pod.Close()
		}()
		return client, nil
	}}
	s := startServer(t, b, DefaultConfig())
	resp, err := s.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: "pod1"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", forward(t, parse(t, resp.Url), io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "banner\n" {
		t.Fatalf("read %q, %v", got, err)
	}
}

func TestPortForwardDialError(t *testing.T) {
	s := startServer(t, &fakeBackend{}, DefaultConfig())
	resp, err := s.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: "pod1"})
	if err != nil {
		t.Fatal(err)
	}
	// client-go logs the error it is sent rather than writing it to
	// errOut; the local connection is closed without data.
	c, err := net.Dial("tcp", forward(t, parse(t, resp.Url), io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	if n, err := io.Copy(io.Discard, c); n != 0 || err != nil {
		t.Fatalf("read %d bytes from a refused connection, %v", n, err)
	}
}

func TestTokens(t *testing.T) {
	s := startServer(t, &fakeBackend{}, DefaultConfig())
	post := func(u string) int {
		t.Helper()
		resp, err := http.Post(u, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	base := s.URL().String()
	for _, path := range []string{"/exec/nope", "/attach/nope", "/portforward/nope", "/exec/", "/other"} {
		if code := post(base + path); code != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", path, code)
		}
	}

	// Tokens are single-use, and bound to their kind of request.
	u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"echo"}, Stdout: true})
	if err := stream(t, u, remotecommand.StreamOptions{Stdout: io.Discard}); err != nil {
		t.Fatal(err)
	}
	if code := post(u.String()); code != http.StatusNotFound {
		t.Errorf("reused token: status %d, want 404", code)
	}
	u = execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"echo"}, Stdout: true})
	if code := post(strings.Replace(u.String(), "/exec/", "/attach/", 1)); code != http.StatusNotFound {
		t.Errorf("exec token used for attach: status %d, want 404", code)
	}
}

// TestTokenExpires waits out the library's one-minute token lifetime.
func TestTokenExpires(t *testing.T) {
	if os.Getenv("PODVISOR_SLOW_TESTS") == "" {
		t.Skip("waits 61s for a token to expire; set PODVISOR_SLOW_TESTS=1 to run")
	}
	s := startServer(t, &fakeBackend{}, DefaultConfig())
	u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"echo"}, Stdout: true})
	time.Sleep(61 * time.Second)
	err := stream(t, u, remotecommand.StreamOptions{Stdout: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("expired token: %v, want 404", err)
	}
}

func TestGetValidates(t *testing.T) {
	s := startServer(t, &fakeBackend{}, DefaultConfig())
	for name, call := range map[string]func() error{
		"exec without command": func() error {
			_, err := s.GetExec(&runtimeapi.ExecRequest{ContainerId: "ctr", Stdout: true})
			return err
		},
		"exec without container": func() error {
			_, err := s.GetExec(&runtimeapi.ExecRequest{Cmd: []string{"ls"}, Stdout: true})
			return err
		},
		"exec tty with stderr": func() error {
			_, err := s.GetExec(&runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"ls"}, Tty: true, Stdout: true, Stderr: true})
			return err
		},
		"exec without streams": func() error {
			_, err := s.GetExec(&runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"ls"}})
			return err
		},
		"attach without streams": func() error {
			_, err := s.GetAttach(&runtimeapi.AttachRequest{ContainerId: "ctr"})
			return err
		},
		"port forward without sandbox": func() error {
			_, err := s.GetPortForward(&runtimeapi.PortForwardRequest{})
			return err
		},
	} {
		if err := call(); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
}

func TestServerLifecycle(t *testing.T) {
	b := &fakeBackend{}
	s, err := New(DefaultConfig(), b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetExec(&runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"echo"}, Stdout: true}); !errors.Is(err, ErrNotServing) {
		t.Fatalf("GetExec before Start: %v", err)
	}
	if s.URL() != nil {
		t.Fatal("URL before Start")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		t.Fatal("second Start succeeded")
	}
	base := s.URL()
	if base.Scheme != "http" || !strings.HasPrefix(base.Host, "127.0.0.1:") || strings.HasSuffix(base.Host, ":0") {
		t.Fatalf("URL %v", base)
	}
	resp, err := s.GetExec(&runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"echo"}, Stdout: true})
	if err != nil || !strings.HasPrefix(resp.Url, base.String()+"/exec/") {
		t.Fatalf("GetExec: %v, %v", resp, err)
	}

	// Stop ends a stream in progress and kills its process.
	u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"sleep"}, Stdout: true})
	done := make(chan error, 1)
	go func() { done <- stream(t, u, remotecommand.StreamOptions{Stdout: io.Discard}) }()
	waitFor(t, "exec started", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.sessions) == 1
	})
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "streaming server is stopping") {
		t.Fatalf("exec across Stop: %v", err)
	}
	waitFor(t, "session closed", b.lastSession().isClosed)
	if _, err := http.Get(base.String() + "/exec/x"); err == nil {
		t.Fatal("still listening after Stop")
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	// And it starts again, on a new port.
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	var stdout syncBuffer
	u = execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"echo", "again"}, Stdout: true})
	if err := stream(t, u, remotecommand.StreamOptions{Stdout: &stdout}); err != nil || stdout.String() != "again\n" {
		t.Fatalf("after restart: %q, %v", stdout.String(), err)
	}
}

func TestTLS(t *testing.T) {
	cfg := DefaultConfig()
	cfg.EnableTLS = true
	s := startServer(t, &fakeBackend{}, cfg)
	u := execURL(t, s, &runtimeapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"echo", "secret"}, Stdout: true})
	if u.Scheme != "https" {
		t.Fatalf("URL %v", u)
	}
	var stdout syncBuffer
	if err := stream(t, u, remotecommand.StreamOptions{Stdout: &stdout}); err != nil || stdout.String() != "secret\n" {
		t.Fatalf("%q, %v", stdout.String(), err)
	}
}
