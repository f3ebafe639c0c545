package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DefaultPath is the search path for a process whose environment has no PATH.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// resolveArgv0 returns the file to execute for argv0. A name containing a
// slash is used as given (a relative one is resolved by the kernel against
// the process's working directory, which is set before the exec). A bare name
// is searched in the PATH of the process's own environment, as a shell in
// that environment would, falling back to defaultPath.
func resolveArgv0(argv0 string, env []string, defaultPath string) (string, error) {
	if strings.Contains(argv0, "/") {
		return argv0, nil
	}
	search := defaultPath
	if p, ok := lookupEnv(env, "PATH"); ok {
		search = p
	}
	for _, dir := range filepath.SplitList(search) {
		// Relative entries would resolve against the agent's working
		// directory, not the process's: skip them.
		if !filepath.IsAbs(dir) {
			continue
		}
		candidate := filepath.Join(dir, argv0)
		if isExecutable(candidate) {
			return candidate, nil
		}
	}
	return "", fmt.Errorf("args[0]: executable %q not found in PATH: %w", truncate(argv0, 80), ErrNotFound)
}

func isExecutable(name string) bool {
	fi, err := os.Stat(name)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// lookupEnv returns the value of the first assignment to key in env, the one
// getenv (glibc, musl) returns inside the process when env has duplicates.
func lookupEnv(env []string, key string) (string, bool) {
	prefix := key + "="
	for _, e := range env {
		if strings.HasPrefix(e, prefix) {
			return e[len(prefix):], true
		}
	}
	return "", false
}
