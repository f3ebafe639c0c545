//go:build e2e

package e2e

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podvisor/podvisor/podvm"
)

// TestPortForwardThroughAgent reaches a server listening on the guest's
// loopback through the agent, the path CRI port-forward takes.
func TestPortForwardThroughAgent(t *testing.T) {
	e := newEnv(t, "")
	vm := e.boot("portfwd")
	www := filepath.Join(vm.SharedDir(), "www")
	if err := os.Mkdir(www, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(www, "index.html"), []byte("hello from the guest\n"), 0o644)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := vm.Start(ctx, podvm.ProcessSpec{ID: "httpd", Args: bb("httpd", "-f", "-p", "127.0.0.1:8080", "-h", podvm.GuestSharedDir+"/www")})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Signal(context.Background(), 9)

	var body string
	for i := 0; i < 50 && !strings.Contains(body, "hello from the guest"); i++ {
		time.Sleep(200 * time.Millisecond)
		c, err := vm.DialPort(ctx, 8080)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET /index.html HTTP/1.0\r\n\r\n")
		b, _ := io.ReadAll(c)
		c.Close()
		body = string(b)
	}
	if !strings.Contains(body, "hello from the guest") {
		t.Fatalf("no answer through port-forward; last reply %q", body)
	}
	if _, err := vm.DialPort(ctx, 0); err == nil {
		t.Fatal("port 0 accepted")
	}
}
