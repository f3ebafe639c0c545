// Package sysctl decides which sysctls a pod may set in its VM. It has no
// dependencies so that the CRI layer can refuse a bad pod before anything
// is built for it.
package sysctl

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// namespacedSysctls are the sysctls a pod may set, as kubelet's namespaced
// set: they act on the guest kernel's IPC and network namespaces, which
// belong to the pod alone. Entries ending in '.' or '*' are prefixes.
var namespacedSysctls = []string{
	"net.",
	"kernel.shm*",
	"kernel.msg*",
	"kernel.sem",
	"fs.mqueue.",
}

// deniedSysctls are net.* prefixes a pod may not set even in its own VM:
// BPF JIT switches weaken the hardening of the guest kernel that keeps
// container processes away from the agent and its session keys.
var deniedSysctls = []string{
	"net.core.bpf_jit_",
}

// ErrInvalid marks a sysctl a pod may not set.
var ErrInvalid = errors.New("invalid sysctl")

// Validate checks the pod sysctls the agent will write under
// /proc/sys in the guest. Keys use dots (kubelet normalises slashes
// before CRI). Errors name the offending key and wrap ErrInvalid;
// keys are checked in sorted order so the error is stable.
func Validate(sysctls map[string]string) error {
	keys := make([]string, 0, len(sysctls))
	for k := range sysctls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := validateSysctl(k, sysctls[k]); err != nil {
			return fmt.Errorf("sysctl %q: %w", k, err)
		}
	}
	return nil
}

func validateSysctl(key, value string) error {
	// The key becomes a path under /proc/sys: nothing that could climb out
	// of it or name a second file.
	switch {
	case key == "" || len(key) > 256:
		return fmt.Errorf("key length must be 1-256: %w", ErrInvalid)
	case strings.Contains(key, ".."), strings.HasPrefix(key, "."), strings.HasSuffix(key, "."):
		return fmt.Errorf("key has an empty component: %w", ErrInvalid)
	case strings.IndexFunc(key, badKeyRune) >= 0:
		return fmt.Errorf("key may only hold letters, digits, '.', '_' and '-': %w", ErrInvalid)
	case !matchesAny(key, namespacedSysctls):
		return fmt.Errorf("not a namespaced sysctl (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*): %w", ErrInvalid)
	case matchesAny(key, deniedSysctls):
		return fmt.Errorf("denied for pods: %w", ErrInvalid)
	}
	// The value is written verbatim: '+' and '=' are refused as they are
	// by runc's sysctl validation, the rest could smuggle a second write
	// or a path.
	if value == "" || len(value) > 4096 {
		return fmt.Errorf("value length must be 1-4096: %w", ErrInvalid)
	}
	if strings.ContainsAny(value, "+=/\n\x00") {
		return fmt.Errorf("value %q holds one of '+', '=', '/', newline, NUL: %w", value, ErrInvalid)
	}
	return nil
}

func badKeyRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
}

// matchesAny: "x." and "x*" are prefixes, anything else an exact key.
func matchesAny(key string, patterns []string) bool {
	for _, p := range patterns {
		switch {
		case strings.HasSuffix(p, "*"):
			if strings.HasPrefix(key, strings.TrimSuffix(p, "*")) {
				return true
			}
		case strings.HasSuffix(p, ".") || strings.HasSuffix(p, "_"):
			if strings.HasPrefix(key, p) {
				return true
			}
		case key == p:
			return true
		}
	}
	return false
}
