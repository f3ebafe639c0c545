package cloudhypervisor

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// vsockPeer listens like a VMM's vsock socket and runs answer on the first
// connection, after reading its CONNECT line.
func vsockPeer(t *testing.T, answer func(c net.Conn, connectLine string)) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vsock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "v.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return
		}
		answer(c, line)
	}()
	return path
}

func TestDialHybridVsock(t *testing.T) {
	tests := []struct {
		name      string
		answer    func(c net.Conn, line string)
		timeout   time.Duration
		wantErr   string // substring; empty for success
		wantFirst string // bytes the caller reads first
	}{
		{
			name: "OK then data in the same segment",
			answer: func(c net.Conn, line string) {
				if line != "CONNECT 1024\n" {
					io.WriteString(c, "bad line "+line)
					return
				}
				io.WriteString(c, "OK 1073741824\nhello")
				time.Sleep(time.Second)
			},
			wantFirst: "hello",
		},
		{
			name:    "nobody listens in the guest",
			answer:  func(c net.Conn, _ string) {},
			wantErr: "closed before OK",
		},
		{
			name:    "reply too long",
			answer:  func(c net.Conn, _ string) { io.WriteString(c, strings.Repeat("O", 100)); time.Sleep(time.Second) },
			wantErr: "longer than",
		},
		{
			name:    "not OK",
			answer:  func(c net.Conn, _ string) { io.WriteString(c, "ERR 1\n") },
			wantErr: "unexpected reply",
		},
		{
			name:    "OK without a number",
			answer:  func(c net.Conn, _ string) { io.WriteString(c, "OK x\n") },
			wantErr: "unexpected reply",
		},
		{
			name:    "guest never answers",
			answer:  func(c net.Conn, _ string) { time.Sleep(2 * time.Second) },
			timeout: 200 * time.Millisecond,
			wantErr: context.DeadlineExceeded.Error(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := vsockPeer(t, tt.answer)
			ctx := testCtx(t)
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			start := time.Now()
			conn, err := dialHybridVsock(ctx, path, AgentVsockPort)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("dial = %v, want error containing %q", err, tt.wantErr)
				}
				if time.Since(start) > time.Second {
					t.Errorf("dial took %s to fail", time.Since(start))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			buf := make([]byte, len(tt.wantFirst))
			if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != tt.wantFirst {
				t.Fatalf("read %q, %v; want %q", buf, err, tt.wantFirst)
			}
		})
	}
}

func TestDialHybridVsockCancel(t *testing.T) {
	path := vsockPeer(t, func(c net.Conn, _ string) { time.Sleep(2 * time.Second) })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := dialHybridVsock(ctx, path, AgentVsockPort)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("dial = %v, want context.Canceled", err)
	}
}
