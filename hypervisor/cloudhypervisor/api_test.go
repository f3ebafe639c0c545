package cloudhypervisor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/cloudhypervisor/chapi"
	"github.com/podvisor/podvisor/hypervisor/cloudhypervisor/chtest"
)

// inProcessFake serves a fake VMM in this process and returns a client of it.
func inProcessFake(t *testing.T, cfg chtest.Config) *apiClient {
	t.Helper()
	dir, err := os.MkdirTemp("", "chapi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := chtest.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "api.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	c, err := newAPIClient(sock)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func minimalVM() chapi.VmConfig {
	return chapi.VmConfig{
		Payload: chapi.PayloadConfig{Kernel: ptr("/vmlinux")},
		Cpus:    &chapi.CpusConfig{BootVcpus: 1, MaxVcpus: 1},
		Memory:  &chapi.MemoryConfig{Size: 64 << 20},
	}
}

func TestAPIErrors(t *testing.T) {
	ctx := testCtx(t)
	tests := []struct {
		name       string
		call       func(a *apiClient) error
		wantStatus int
		wantIs     error
	}{
		{"boot before create", func(a *apiClient) error { return a.BootVM(ctx) }, http.StatusNotFound, nil},
		{"info before create", func(a *apiClient) error { _, err := a.Info(ctx); return err }, http.StatusNotFound, nil},
		{"shutdown before create", func(a *apiClient) error { return a.ShutdownVM(ctx) }, http.StatusInternalServerError, nil},
		{"create with a vsock cid the spec forbids", func(a *apiClient) error {
			vc := minimalVM()
			vc.Vsock = &chapi.VsockConfig{Cid: 1, Socket: "/v"} // cid < 3 breaks the spec
			return a.CreateVM(ctx, vc)
		}, http.StatusBadRequest, hypervisor.ErrInvalidConfig},
		{"create twice", func(a *apiClient) error {
			if err := a.CreateVM(ctx, minimalVM()); err != nil {
				return err
			}
			return a.CreateVM(ctx, minimalVM())
		}, http.StatusInternalServerError, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(inProcessFake(t, chtest.Config{}))
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.Status != tt.wantStatus {
				t.Fatalf("err = %v, want an APIError with status %d", err, tt.wantStatus)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want it to match %v", err, tt.wantIs)
			}
		})
	}
}

// TestAddNetFDCount: the client sends num_queues = 2 × fds; the fake rejects
// a request whose fds and num_queues disagree, as the real VMM does.
func TestAddNetFDCount(t *testing.T) {
	ctx := testCtx(t)
	a := inProcessFake(t, chtest.Config{})
	if err := a.CreateVM(ctx, minimalVM()); err != nil {
		t.Fatal(err)
	}
	r1, w1, _ := os.Pipe()
	r2, w2, _ := os.Pipe()
	defer func() { r1.Close(); w1.Close(); r2.Close(); w2.Close() }()
	if err := a.AddNet(ctx, chapi.NetConfig{Id: ptr("mq")}, []*os.File{w1, w2}); err != nil {
		t.Fatalf("AddNet with two queue pairs: %v", err)
	}
	if err := a.AddNet(ctx, chapi.NetConfig{Id: ptr("none")}, nil); err == nil {
		t.Fatal("AddNet without fds succeeded")
	}

	// One fd but num_queues 4, written by hand.
	req, wire, err := encodeAddNet(chapi.NetConfig{Id: ptr("bad"), NumQueues: ptr(4)})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: a.socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fds, err := dupFDs([]*os.File{w1})
	if err != nil {
		t.Fatal(err)
	}
	defer closeFDs(fds)
	if err := writeWithRights(conn, wire, unix.UnixRights(fds...)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Fatalf("fake accepted 1 fd with num_queues 4: %s", resp.Status)
	}
}

func TestEncodeAddNet(t *testing.T) {
	_, wire, err := encodeAddNet(chapi.NetConfig{Id: ptr("eth0"), NumQueues: ptr(2)})
	if err != nil {
		t.Fatal(err)
	}
	head, body, ok := bytes.Cut(wire, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no header end in %q", wire)
	}
	head = append(head, "\r\n"...)
	for _, want := range []string{
		"PUT /api/v1/vm.add-net HTTP/1.1\r\n",
		"Host: localhost\r\n",
		"Content-Type: application/json\r\n",
		fmt.Sprintf("Content-Length: %d\r\n", len(body)),
	} {
		if !bytes.Contains(head, []byte(want)) {
			t.Errorf("request head lacks %q:\n%s", want, head)
		}
	}
	if bytes.Contains(head, []byte("chunked")) {
		t.Errorf("chunked request:\n%s", head)
	}
}
