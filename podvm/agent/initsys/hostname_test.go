package initsys

import (
	"strings"
	"testing"
)

func TestValidateHostname(t *testing.T) {
	for _, ok := range []string{"pod", "my-pod-1", "a.b.c", strings.Repeat("a", 63)} {
		if err := validateHostname(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("a", 65), "-a", "a-", "a..b", "a_b", "a b", "a\x00", "é"} {
		if err := validateHostname(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
