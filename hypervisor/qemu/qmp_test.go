package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podvisor/podvisor/hypervisor"
)

// fakeCommand is one command the fake QMP server received.
type fakeCommand struct {
	Execute   string          `json:"execute"`
	Arguments json.RawMessage `json:"arguments"`
	ID        json.RawMessage `json:"id"`
	fds       []int           // received with it (SCM_RIGHTS); the handler owns them
}

// fakeAnswer is what the server sends for a command: events first, then
// the reply (an error when err is set) unless noReply, then after.
type fakeAnswer struct {
	events  []string // raw event JSON
	ret     any
	err     *qmpError
	noReply bool
	after   []string // raw messages sent after the reply
}

// fakeQMP is a QMP server on one end of a socketpair, scripted by handle.
type fakeQMP struct {
	t        *testing.T
	conn     *net.UnixConn
	greeting string
	handle   func(cmd fakeCommand) fakeAnswer

	mu       sync.Mutex
	commands []fakeCommand
}

// startFakeQMP serves the fake on one end of a socketpair and returns a
// client connection to it.
func startFakeQMP(t *testing.T, handle func(fakeCommand) fakeAnswer) (*fakeQMP, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]*net.UnixConn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "qmp")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c.(*net.UnixConn)
	}
	s := &fakeQMP{
		t: t, conn: conns[0], handle: handle,
		greeting: `{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}`,
	}
	t.Cleanup(func() { s.conn.Close() })
	return s, conns[1]
}

func (s *fakeQMP) serve() {
	s.send(s.greeting)
	var buf []byte
	var pendingFDs []int
	b := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, _, _, err := s.conn.ReadMsgUnix(b, oob)
		if err != nil {
			return
		}
		if oobn > 0 {
			msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			for _, m := range msgs {
				fds, _ := unix.ParseUnixRights(&m)
				pendingFDs = append(pendingFDs, fds...)
			}
		}
		buf = append(buf, b[:n]...)
		for {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				break
			}
			line := buf[:i]
			buf = buf[i+1:]
			var cmd fakeCommand
			if err := json.Unmarshal(line, &cmd); err != nil {
				s.t.Errorf("fake QMP: bad command %q: %v", line, err)
				return
			}
			cmd.fds, pendingFDs = pendingFDs, nil
			s.mu.Lock()
			s.commands = append(s.commands, cmd)
			s.mu.Unlock()
			s.answer(cmd)
		}
	}
}

func (s *fakeQMP) answer(cmd fakeCommand) {
	a := fakeAnswer{ret: map[string]any{}}
	if cmd.Execute != "qmp_capabilities" && s.handle != nil {
		a = s.handle(cmd)
	}
	for _, e := range a.events {
		s.send(e)
	}
	if a.noReply {
		return
	}
	reply := map[string]any{"id": cmd.ID}
	if a.err != nil {
		reply["error"] = a.err
	} else {
		if a.ret == nil {
			a.ret = map[string]any{}
		}
		reply["return"] = a.ret
	}
	b, _ := json.Marshal(reply)
	s.send(string(b))
	for _, m := range a.after {
		s.send(m)
	}
}

func (s *fakeQMP) send(msg string) {
	_, _ = s.conn.Write([]byte(msg + "\r\n"))
}

// executed lists the commands received, in order.
func (s *fakeQMP) executed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for _, c := range s.commands {
		names = append(names, c.Execute)
	}
	return names
}

func connectFake(t *testing.T, handle func(fakeCommand) fakeAnswer) (*fakeQMP, *qmpClient) {
	t.Helper()
	s, c := startFakeQMP(t, handle)
	go s.serve()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q, err := newQMPClient(ctx, c, "test")
	if err != nil {
		t.Fatalf("newQMPClient: %v", err)
	}
	t.Cleanup(q.close)
	return s, q
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestQMPHandshakeAndReply(t *testing.T) {
	s, q := connectFake(t, func(cmd fakeCommand) fakeAnswer {
		return fakeAnswer{ret: map[string]any{"status": "running", "running": true}}
	})
	var st struct {
		Status string `json:"status"`
	}
	if err := q.execute(testCtx(t), "query-status", nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.Status != "running" {
		t.Errorf("status = %q", st.Status)
	}
	if got := s.executed(); strings.Join(got, ",") != "qmp_capabilities,query-status" {
		t.Errorf("commands = %v", got)
	}
}

func TestQMPErrorReply(t *testing.T) {
	_, q := connectFake(t, func(cmd fakeCommand) fakeAnswer {
		return fakeAnswer{err: &qmpError{Class: "DeviceNotFound", Desc: "Device 'x' not found"}}
	})
	err := q.execute(testCtx(t), "device_del", map[string]any{"id": "x"}, nil)
	if !isQMPClass(err, "DeviceNotFound") {
		t.Fatalf("err = %v, want a DeviceNotFound reply", err)
	}
	if !strings.Contains(err.Error(), "Device 'x' not found") {
		t.Errorf("error lost QEMU's description: %v", err)
	}
}

func TestQMPEventsInterleavedWithReplies(t *testing.T) {
	_, q := connectFake(t, func(cmd fakeCommand) fakeAnswer {
		return fakeAnswer{events: []string{
			`{"event": "DEVICE_DELETED", "data": {"path": "/machine/peripheral/dev-d/virtio-backend"}, "timestamp": {"seconds": 1, "microseconds": 2}}`,
			`{"event": "DEVICE_DELETED", "data": {"device": "dev-d", "path": "/machine/peripheral/dev-d"}, "timestamp": {"seconds": 1, "microseconds": 3}}`,
		}}
	})
	w := q.watch("DEVICE_DELETED", func(data json.RawMessage) bool {
		var d struct {
			Device string `json:"device"`
		}
		return json.Unmarshal(data, &d) == nil && d.Device == "dev-d"
	})
	defer q.unwatch(w)
	if err := q.execute(testCtx(t), "device_del", map[string]any{"id": "dev-d"}, nil); err != nil {
		t.Fatal(err)
	}
	data, err := q.waitEvent(testCtx(t), w)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"device": "dev-d"`) && !strings.Contains(string(data), `"device":"dev-d"`) {
		t.Errorf("got event data %s, want the one for dev-d", data)
	}
}

func TestQMPShutdownEventRecorded(t *testing.T) {
	_, q := connectFake(t, func(cmd fakeCommand) fakeAnswer {
		return fakeAnswer{events: []string{`{"event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}`}}
	})
	if err := q.execute(testCtx(t), "query-status", nil, nil); err != nil {
		t.Fatal(err)
	}
	if r := q.shutdownReason(); r != "guest-shutdown" {
		t.Errorf("shutdown reason = %q", r)
	}
}

// TestQMPConcurrentCommands answers two commands out of order: each caller
// must get its own reply.
func TestQMPConcurrentCommands(t *testing.T) {
	var mu sync.Mutex
	var held *fakeCommand
	_, q := connectFake(t, func(cmd fakeCommand) fakeAnswer {
		mu.Lock()
		defer mu.Unlock()
		if held == nil {
			held = &cmd // answered after the second one
			return fakeAnswer{noReply: true}
		}
		b, _ := json.Marshal(map[string]any{"id": held.ID, "return": map[string]any{"name": "first"}})
		return fakeAnswer{ret: map[string]any{"name": "second"}, after: []string{string(b)}}
	})
	var wg sync.WaitGroup
	results := make([]string, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r struct {
				Name string `json:"name"`
			}
			if err := q.execute(testCtx(t), "query-name", nil, &r); err != nil {
				t.Error(err)
			}
			results[i] = r.Name
		}()
		time.Sleep(20 * time.Millisecond) // fix the order the fake sees
	}
	wg.Wait()
	if results[0] != "first" || results[1] != "second" {
		t.Errorf("replies crossed: %v", results)
	}
}

func TestQMPExecuteFilePassesDescriptor(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "tap")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &want); err != nil {
		t.Fatal(err)
	}
	got := make(chan unix.Stat_t, 1)
	_, q := connectFake(t, func(cmd fakeCommand) fakeAnswer {
		if cmd.Execute != "getfd" || len(cmd.fds) != 1 {
			return fakeAnswer{err: &qmpError{Class: "GenericError", Desc: "No file descriptor supplied via SCM_RIGHTS"}}
		}
		var st unix.Stat_t
		_ = unix.Fstat(cmd.fds[0], &st)
		unix.Close(cmd.fds[0])
		got <- st
		return fakeAnswer{}
	})
	if err := q.executeFile(testCtx(t), "getfd", map[string]any{"fdname": "tap-x"}, f, nil); err != nil {
		t.Fatal(err)
	}
	st := <-got
	if st.Ino != want.Ino || st.Dev != want.Dev {
		t.Errorf("received a different file: ino %d, want %d", st.Ino, want.Ino)
	}
	// The caller's file stays usable.
	if _, err := f.Write([]byte("x")); err != nil {
		t.Errorf("caller's file broken after passing it: %v", err)
	}
}

func TestQMPConnectionLossFailsPending(t *testing.T) {
	s, q := connectFake(t, func(cmd fakeCommand) fakeAnswer { return fakeAnswer{noReply: true} })
	errc := make(chan error, 1)
	go func() { errc <- q.execute(testCtx(t), "query-status", nil, nil) }()
	time.Sleep(20 * time.Millisecond)
	s.conn.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, hypervisor.ErrNotRunning) {
			t.Errorf("err = %v, want ErrNotRunning", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pending command not failed after the connection closed")
	}
	if err := q.execute(testCtx(t), "query-status", nil, nil); !errors.Is(err, hypervisor.ErrNotRunning) {
		t.Errorf("command after close: %v, want ErrNotRunning", err)
	}
}

func TestQMPContextEndsWait(t *testing.T) {
	_, q := connectFake(t, func(cmd fakeCommand) fakeAnswer { return fakeAnswer{noReply: true} })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := q.execute(ctx, "query-status", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
}

func TestQMPBadGreeting(t *testing.T) {
	s, c := startFakeQMP(t, nil)
	s.greeting = `{"return": {}}`
	go s.serve()
	if _, err := newQMPClient(testCtx(t), c, "test"); err == nil {
		t.Fatal("accepted a peer that did not greet like QMP")
	}
}

func TestQMPGreetingTimeout(t *testing.T) {
	_, c := startFakeQMP(t, nil) // never served: no greeting
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := newQMPClient(ctx, c, "test"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
}

func TestQMPOversizedMessage(t *testing.T) {
	s, q := connectFake(t, func(cmd fakeCommand) fakeAnswer { return fakeAnswer{noReply: true} })
	errc := make(chan error, 1)
	go func() { errc <- q.execute(testCtx(t), "query-status", nil, nil) }()
	time.Sleep(20 * time.Millisecond)
	go s.send(`{"event": "X", "data": "` + strings.Repeat("a", maxQMPMessage) + `"}`)
	if err := <-errc; !errors.Is(err, hypervisor.ErrNotRunning) || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("err = %v, want the connection dropped for an oversized message", err)
	}
}
