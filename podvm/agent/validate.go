package agent

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// Limits on a StartProcess request. The argument limits follow the kernel's
// (MAX_ARG_STRLEN is 128 KiB; the whole of argv and envp must fit in a quarter
// of the stack limit, 2 MiB by default), so a request that passes validation
// does not fail later in execve with E2BIG for a reason the host cannot see.
const (
	maxArgs          = 1024
	maxEnv           = 4096
	maxArgLen        = 128 << 10
	maxArgsTotal     = 1 << 20
	maxEnvTotal      = 1 << 20
	maxCwdLen        = 4096 // PATH_MAX
	maxAdditionalGID = 256
	maxWinsize       = 65535
	// noID is (uid_t)-1 / (gid_t)-1, which set*id calls read as "leave
	// unchanged": a request for it would silently keep the agent's root.
	noID = 1<<32 - 1
)

var idPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

func invalid(field, format string, a ...any) error {
	return fmt.Errorf("%s: %s: %w", field, fmt.Sprintf(format, a...), ErrInvalidArgument)
}

// validateID checks a process id as every RPC receives it.
func validateID(id string) error {
	if !idPattern.MatchString(id) {
		return invalid("id", "%q does not match %s", truncate(id, 80), idPattern)
	}
	return nil
}

// validateStart checks every field of a StartProcess request.
func validateStart(req *agentpb.StartProcessRequest) error {
	checks := []func(*agentpb.StartProcessRequest) error{
		func(r *agentpb.StartProcessRequest) error { return validateID(r.GetId()) },
		validateArgs,
		validateEnv,
		validateCwd,
		validateIDs,
		validateTerminal,
	}
	for _, check := range checks {
		if err := check(req); err != nil {
			return err
		}
	}
	return nil
}

func validateArgs(r *agentpb.StartProcessRequest) error {
	args := r.GetArgs()
	switch {
	case len(args) == 0:
		return invalid("args", "empty")
	case len(args) > maxArgs:
		return invalid("args", "%d entries, more than %d", len(args), maxArgs)
	case args[0] == "":
		return invalid("args[0]", "empty")
	}
	total := 0
	for i, a := range args {
		field := fmt.Sprintf("args[%d]", i)
		if len(a) > maxArgLen {
			return invalid(field, "%d bytes, more than %d", len(a), maxArgLen)
		}
		if strings.IndexByte(a, 0) >= 0 {
			return invalid(field, "contains a NUL byte")
		}
		total += len(a) + 1
	}
	if total > maxArgsTotal {
		return invalid("args", "%d bytes in total, more than %d", total, maxArgsTotal)
	}
	return nil
}

func validateEnv(r *agentpb.StartProcessRequest) error {
	env := r.GetEnv()
	if len(env) > maxEnv {
		return invalid("env", "%d entries, more than %d", len(env), maxEnv)
	}
	total := 0
	for i, e := range env {
		field := fmt.Sprintf("env[%d]", i)
		if len(e) > maxArgLen {
			return invalid(field, "%d bytes, more than %d", len(e), maxArgLen)
		}
		if strings.IndexByte(e, 0) >= 0 {
			return invalid(field, "contains a NUL byte")
		}
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			// Never echo the value: environments carry credentials.
			return invalid(field, "not of the form KEY=VALUE with a non-empty KEY")
		}
		total += len(e) + 1
	}
	if total > maxEnvTotal {
		return invalid("env", "%d bytes in total, more than %d", total, maxEnvTotal)
	}
	return nil
}

func validateCwd(r *agentpb.StartProcessRequest) error {
	cwd := r.GetCwd()
	switch {
	case cwd == "":
		return nil // the root directory
	case len(cwd) > maxCwdLen:
		return invalid("cwd", "%d bytes, more than %d", len(cwd), maxCwdLen)
	case strings.IndexByte(cwd, 0) >= 0:
		return invalid("cwd", "contains a NUL byte")
	case !path.IsAbs(cwd):
		return invalid("cwd", "%q is not absolute", truncate(cwd, 80))
	}
	return nil
}

func validateIDs(r *agentpb.StartProcessRequest) error {
	if r.GetUid() == noID {
		return invalid("uid", "%d is reserved", r.GetUid())
	}
	if r.GetGid() == noID {
		return invalid("gid", "%d is reserved", r.GetGid())
	}
	gids := r.GetAdditionalGids()
	if len(gids) > maxAdditionalGID {
		return invalid("additional_gids", "%d entries, more than %d", len(gids), maxAdditionalGID)
	}
	for i, g := range gids {
		if g == noID {
			return invalid(fmt.Sprintf("additional_gids[%d]", i), "%d is reserved", g)
		}
	}
	return nil
}

func validateTerminal(r *agentpb.StartProcessRequest) error {
	if r.GetRows() > maxWinsize {
		return invalid("rows", "%d, more than %d", r.GetRows(), maxWinsize)
	}
	if r.GetCols() > maxWinsize {
		return invalid("cols", "%d, more than %d", r.GetCols(), maxWinsize)
	}
	if r.GetTerminal() {
		if r.GetStderr() {
			// The pty merges stderr into stdout; a stderr stream would
			// never carry anything and never end.
			return invalid("stderr", "not available with terminal")
		}
		return nil
	}
	if r.GetRows() != 0 || r.GetCols() != 0 {
		return invalid("rows", "window size without terminal")
	}
	return nil
}

// validateWinsize checks a ResizeTTY request's size.
func validateWinsize(rows, cols uint32) error {
	if rows > maxWinsize {
		return invalid("rows", "%d, more than %d", rows, maxWinsize)
	}
	if cols > maxWinsize {
		return invalid("cols", "%d, more than %d", cols, maxWinsize)
	}
	return nil
}

// truncate shortens s for an error message without splitting a UTF-8
// sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
