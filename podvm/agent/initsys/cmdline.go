package initsys

import (
	"os"
	"strings"
)

// CmdlinePrefix starts the kernel parameters meant for the agent. The
// kernel ignores dotted parameters it does not know, and neither passes them
// to init's environment nor argv.
const CmdlinePrefix = "podvisor."

// ReadCmdline returns the podvisor.* parameters of the running kernel (see
// ParseCmdline). It needs /proc.
func ReadCmdline() (map[string]string, error) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil, err
	}
	return ParseCmdline(string(b)), nil
}

// ParseCmdline returns the podvisor.* parameters of a kernel command line,
// keyed by name without the prefix: "podvisor.port=1024" gives
// {"port": "1024"}, and a parameter without "=" has an empty value. Values
// may be double-quoted to hold spaces, as the kernel allows. When a
// parameter repeats, the last one wins. /proc/cmdline is world-readable:
// it never carries secrets.
func ParseCmdline(s string) map[string]string {
	out := map[string]string{}
	for _, param := range splitCmdline(s) {
		name, value, _ := strings.Cut(unquote(param), "=")
		value = unquote(value)
		key, ok := strings.CutPrefix(name, CmdlinePrefix)
		if ok && key != "" {
			out[key] = value
		}
	}
	return out
}

// splitCmdline splits at whitespace outside double quotes.
func splitCmdline(s string) []string {
	var params []string
	var cur strings.Builder
	inQuote := false
	for _, c := range s {
		switch {
		case c == '"':
			inQuote = !inQuote
			cur.WriteRune(c)
		case !inQuote && (c == ' ' || c == '\t' || c == '\n'):
			if cur.Len() > 0 {
				params = append(params, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(c)
		}
	}
	if cur.Len() > 0 {
		params = append(params, cur.String())
	}
	return params
}

// unquote removes one pair of surrounding double quotes, or a leading one
// left unmatched.
func unquote(s string) string {
	if !strings.HasPrefix(s, `"`) {
		return s
	}
	s = s[1:]
	return strings.TrimSuffix(s, `"`)
}
