package agent

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

func validRequest() *agentpb.StartProcessRequest {
	return &agentpb.StartProcessRequest{
		Id: "ok", Args: []string{"/bin/true"}, Env: []string{"A=1"}, Cwd: "/",
		Uid: 1000, Gid: 1000, AdditionalGids: []uint32{1, 2},
	}
}

// invalidRequests are requests with one bad field each, and the field the
// error must name.
var invalidRequests = []struct {
	name   string
	mutate func(*agentpb.StartProcessRequest)
	field  string
}{
	{"empty id", func(r *agentpb.StartProcessRequest) { r.Id = "" }, "id"},
	{"id starts with dot", func(r *agentpb.StartProcessRequest) { r.Id = ".x" }, "id"},
	{"id with slash", func(r *agentpb.StartProcessRequest) { r.Id = "a/b" }, "id"},
	{"id with newline", func(r *agentpb.StartProcessRequest) { r.Id = "a\n" }, "id"},
	{"id too long", func(r *agentpb.StartProcessRequest) { r.Id = strings.Repeat("a", 65) }, "id"},
	{"no args", func(r *agentpb.StartProcessRequest) { r.Args = nil }, "args"},
	{"empty argv0", func(r *agentpb.StartProcessRequest) { r.Args = []string{""} }, "args[0]"},
	{"too many args", func(r *agentpb.StartProcessRequest) { r.Args = make([]string, maxArgs+1); r.Args[0] = "x" }, "args"},
	{"arg too long", func(r *agentpb.StartProcessRequest) { r.Args = []string{"x", strings.Repeat("a", maxArgLen+1)} }, "args[1]"},
	{"args too long in total", func(r *agentpb.StartProcessRequest) {
		r.Args = []string{"x"}
		for range 9 {
			r.Args = append(r.Args, strings.Repeat("a", maxArgLen))
		}
	}, "args"},
	{"NUL in arg", func(r *agentpb.StartProcessRequest) { r.Args = []string{"x", "a\x00b"} }, "args[1]"},
	{"env without =", func(r *agentpb.StartProcessRequest) { r.Env = []string{"A=1", "B"} }, "env[1]"},
	{"env with empty key", func(r *agentpb.StartProcessRequest) { r.Env = []string{"=x"} }, "env[0]"},
	{"NUL in env", func(r *agentpb.StartProcessRequest) { r.Env = []string{"A=\x00"} }, "env[0]"},
	{"env entry too long", func(r *agentpb.StartProcessRequest) { r.Env = []string{"A=" + strings.Repeat("a", maxArgLen)} }, "env[0]"},
	{"too many env", func(r *agentpb.StartProcessRequest) {
		r.Env = make([]string, maxEnv+1)
		for i := range r.Env {
			r.Env[i] = "A=1"
		}
	}, "env"},
	{"relative cwd", func(r *agentpb.StartProcessRequest) { r.Cwd = "tmp" }, "cwd"},
	{"NUL in cwd", func(r *agentpb.StartProcessRequest) { r.Cwd = "/a\x00" }, "cwd"},
	{"cwd too long", func(r *agentpb.StartProcessRequest) { r.Cwd = "/" + strings.Repeat("a", maxCwdLen) }, "cwd"},
	{"uid -1", func(r *agentpb.StartProcessRequest) { r.Uid = noID }, "uid"},
	{"gid -1", func(r *agentpb.StartProcessRequest) { r.Gid = noID }, "gid"},
	{"additional gid -1", func(r *agentpb.StartProcessRequest) { r.AdditionalGids = []uint32{1, noID} }, "additional_gids[1]"},
	{"too many gids", func(r *agentpb.StartProcessRequest) { r.AdditionalGids = make([]uint32, maxAdditionalGID+1) }, "additional_gids"},
	{"rows too big", func(r *agentpb.StartProcessRequest) { r.Terminal, r.Rows = true, 65536 }, "rows"},
	{"cols too big", func(r *agentpb.StartProcessRequest) { r.Terminal, r.Cols = true, 65536 }, "cols"},
	{"size without terminal", func(r *agentpb.StartProcessRequest) { r.Rows, r.Cols = 24, 80 }, "rows"},
	{"stderr with terminal", func(r *agentpb.StartProcessRequest) { r.Terminal, r.Stderr = true, true }, "stderr"},
}

func TestValidateStart(t *testing.T) {
	if err := validateStart(validRequest()); err != nil {
		t.Fatalf("valid request: %v", err)
	}
	for _, tt := range invalidRequests {
		t.Run(tt.name, func(t *testing.T) {
			req := validRequest()
			tt.mutate(req)
			err := validateStart(req)
			if err == nil || !strings.HasPrefix(err.Error(), tt.field+":") {
				t.Errorf("err = %v, want one naming %s", err, tt.field)
			}
		})
	}
}

// TestStartProcessInvalid sends each invalid request through gRPC.
func TestStartProcessInvalid(t *testing.T) {
	f := newFixture(t)
	for _, tt := range invalidRequests {
		t.Run(tt.name, func(t *testing.T) {
			req := validRequest()
			tt.mutate(req)
			_, err := f.client.StartProcess(ctxFor(t), req)
			wantCode(t, err, codes.InvalidArgument, tt.field)
		})
	}
	if n := f.svc.procs.len(); n != 0 {
		t.Errorf("%d processes after invalid requests", n)
	}
}

func TestTruncateKeepsUTF8(t *testing.T) {
	s := strings.Repeat("é", 100)
	for n := range 20 {
		got := truncate(s, n)
		if !strings.HasSuffix(got, "…") || !isValidUTF8(got) {
			t.Errorf("truncate(%d) = %q", n, got)
		}
	}
}

func isValidUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }
