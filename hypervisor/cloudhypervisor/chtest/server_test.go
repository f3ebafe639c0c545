package chtest

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// startServer serves a fake VMM on a socket in a temporary directory and
// returns a client for it and the events file.
func startServer(t *testing.T, cfg Config) (*http.Client, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "chtest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg.EventsFile = filepath.Join(dir, "events")
	s, err := NewServer(cfg)
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
	c := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	return c, cfg.EventsFile
}

type call struct {
	method, endpoint, body string
	want                   int
	wantErr                string // substring of the reply body
}

func do(t *testing.T, c *http.Client, k call) {
	t.Helper()
	var body io.Reader
	if k.body != "" {
		body = strings.NewReader(k.body)
	}
	req, err := http.NewRequest(k.method, "http://localhost/api/v1/"+k.endpoint, body)
	if err != nil {
		t.Fatal(err)
	}
	if k.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", k.method, k.endpoint, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != k.want {
		t.Fatalf("%s %s: status %d (%s), want %d", k.method, k.endpoint, resp.StatusCode, b, k.want)
	}
	t.Logf("%s %s -> %d %s", k.method, k.endpoint, resp.StatusCode, b)
	if k.wantErr != "" && !strings.Contains(string(b), k.wantErr) {
		t.Fatalf("%s %s: reply %s does not mention %q", k.method, k.endpoint, b, k.wantErr)
	}
}

const (
	goodVM  = `{"payload":{"kernel":"/k"},"cpus":{"boot_vcpus":1,"max_vcpus":1},"memory":{"size":67108864}}`
	put     = http.MethodPut
	get     = http.MethodGet
	noBody  = ""
	created = http.StatusNoContent
)

func TestServerStateMachine(t *testing.T) {
	tests := []struct {
		name  string
		calls []call
	}{
		{"spec rejects VmConfig without payload", []call{
			{put, "vm.create", `{"cpus":{"boot_vcpus":1,"max_vcpus":1}}`, 400, "payload"},
			{get, "vm.info", noBody, 404, ""},
		}},
		{"spec rejects a mistyped field", []call{
			{put, "vm.create", `{"payload":{},"memory":{"size":"big"}}`, 400, "size"},
		}},
		{"spec rejects vsock cid below 3", []call{
			{put, "vm.create", `{"payload":{},"vsock":{"cid":2,"socket":"/v"}}`, 400, "cid"},
		}},
		{"unknown field rejected though the spec allows it", []call{
			{put, "vm.create", `{"payload":{"kernal":"/k"}}`, 400, "kernal"},
		}},
		{"boot before create", []call{
			{put, "vm.boot", noBody, 404, "not created"},
		}},
		{"info before create", []call{
			{get, "vm.info", noBody, 404, ""},
		}},
		{"shutdown before boot", []call{
			{put, "vm.create", goodVM, created, ""},
			{put, "vm.shutdown", noBody, 500, "not running"},
		}},
		{"create twice", []call{
			{put, "vm.create", goodVM, created, ""},
			{put, "vm.create", goodVM, 500, "already created"},
		}},
		{"body on a body-less action", []call{
			{put, "vm.create", goodVM, created, ""},
			{put, "vm.boot", `{}`, 400, ""},
		}},
		{"wrong method", []call{
			{get, "vm.boot", noBody, 400, ""},
		}},
		{"unknown endpoint", []call{
			{put, "vm.explode", noBody, 404, ""},
		}},
		{"add-net without fds", []call{
			{put, "vm.create", goodVM, created, ""},
			{put, "vm.add-net", `{"id":"n0","num_queues":2}`, 500, "fds"},
		}},
		{"lifecycle", []call{
			{get, "vmm.ping", noBody, 200, "version"},
			{put, "vm.create", goodVM, created, ""},
			{get, "vm.info", noBody, 200, `"Created"`},
			{put, "vm.boot", noBody, created, ""},
			{get, "vm.info", noBody, 200, `"Running"`},
			{put, "vm.boot", noBody, 500, "already running"},
			{put, "vm.remove-device", `{"id":"nope"}`, 500, ""},
			{put, "vm.shutdown", noBody, created, ""},
			{get, "vm.info", noBody, 200, `"Created"`},
			{put, "vmm.shutdown", noBody, 200, ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := startServer(t, Config{})
			for _, k := range tt.calls {
				do(t, c, k)
			}
		})
	}
}

func TestServerRecordsSpecRejection(t *testing.T) {
	c, events := startServer(t, Config{})
	do(t, c, call{put, "vm.create", `{"cpus":{"boot_vcpus":1,"max_vcpus":1}}`, 400, ""})
	evs, err := ReadEvents(events)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Endpoint != "vm.create" || !strings.HasPrefix(evs[0].Error, "spec: ") {
		t.Fatalf("events = %+v, want one spec rejection of vm.create", evs)
	}
}

func TestServerFaults(t *testing.T) {
	c, _ := startServer(t, Config{Faults: map[string]int{"vm.boot": 503}})
	do(t, c, call{put, "vm.create", goodVM, created, ""})
	do(t, c, call{put, "vm.boot", noBody, 503, "injected"})
	// A fault never bypasses validation.
	do(t, c, call{put, "vm.boot", `{}`, 400, ""})
}
