package initsys

import (
	"fmt"
	"strings"
)

// maxHostnameLen is HOST_NAME_MAX on Linux.
const maxHostnameLen = 64

// validateHostname accepts RFC 1123 host names: dot-separated labels of
// letters, digits and inner hyphens.
func validateHostname(name string) error {
	if name == "" || len(name) > maxHostnameLen {
		return fmt.Errorf("hostname %q: empty or longer than %d bytes", name, maxHostnameLen)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("hostname %q: bad label %q", name, label)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("hostname %q: bad character %q", name, c)
			}
		}
	}
	return nil
}

// ValidateHostname reports whether name is a valid RFC 1123 host name of at
// most HOST_NAME_MAX bytes, as SetHostname requires.
func ValidateHostname(name string) error { return validateHostname(name) }
