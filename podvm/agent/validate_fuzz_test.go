package agent

import (
	"errors"
	"strings"
	"testing"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// FuzzValidateStart checks that the validator never panics, only ever
// returns InvalidArgument, and that what it accepts is safe to hand to
// execve: no NUL bytes, a well-formed id, an absolute cwd, KEY=VALUE env.
//
//	go test -fuzz FuzzValidateStart ./podvm/agent/
func FuzzValidateStart(f *testing.F) {
	f.Add("ok", "/bin/true", "x", "A=1", "/", uint32(0), uint32(0), uint32(24), uint32(80), true, false)
	f.Add("", "", "", "", "", uint32(0), uint32(0), uint32(0), uint32(0), false, false)
	f.Add("a.b-c_d", "sh", "a\x00b", "=", "rel", uint32(noID), uint32(1), uint32(65536), uint32(0), false, true)
	f.Fuzz(func(t *testing.T, id, arg0, arg1, env, cwd string, uid, gid, rows, cols uint32, terminal, stderr bool) {
		req := &agentpb.StartProcessRequest{
			Id: id, Args: []string{arg0, arg1}, Env: []string{env}, Cwd: cwd,
			Uid: uid, Gid: gid, AdditionalGids: []uint32{gid},
			Terminal: terminal, Rows: rows, Cols: cols, Stderr: stderr,
		}
		err := validateStart(req)
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("error of the wrong kind: %v", err)
			}
			return
		}
		if !idPattern.MatchString(id) || strings.ContainsRune(id, '\n') {
			t.Fatalf("accepted id %q", id)
		}
		for _, s := range []string{arg0, arg1, env, cwd} {
			if strings.IndexByte(s, 0) >= 0 {
				t.Fatalf("accepted a NUL byte in %q", s)
			}
		}
		if arg0 == "" {
			t.Fatal("accepted an empty argv[0]")
		}
		if k, _, ok := strings.Cut(env, "="); !ok || k == "" {
			t.Fatalf("accepted env %q", env)
		}
		if cwd != "" && cwd[0] != '/' {
			t.Fatalf("accepted cwd %q", cwd)
		}
		if uid == noID || gid == noID || rows > maxWinsize || cols > maxWinsize {
			t.Fatalf("accepted uid %d gid %d rows %d cols %d", uid, gid, rows, cols)
		}
		if terminal && stderr {
			t.Fatal("accepted stderr with terminal")
		}
	})
}
