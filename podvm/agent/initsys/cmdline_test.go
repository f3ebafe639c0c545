package initsys

import (
	"reflect"
	"testing"
)

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
	}{
		{"none", "console=ttyS0 quiet root=/dev/vda\n", map[string]string{}},
		{"values and flags", "console=ttyS0 podvisor.port=1024 podvisor.debug podvisor.sandbox=abc quiet",
			map[string]string{"port": "1024", "debug": "", "sandbox": "abc"}},
		{"quoted value", `podvisor.msg="hello world" x=1`, map[string]string{"msg": "hello world"}},
		{"quoted param", `"podvisor.msg=a b"`, map[string]string{"msg": "a b"}},
		{"value with =", "podvisor.env=A=B", map[string]string{"env": "A=B"}},
		{"last wins", "podvisor.a=1 podvisor.a=2", map[string]string{"a": "2"}},
		{"prefix only ignored", "podvisor.=x podvisor podvisorx.a=1", map[string]string{}},
		{"after --", "quiet -- podvisor.a=1", map[string]string{"a": "1"}},
		{"tabs and newlines", "\tpodvisor.a=1\npodvisor.b=2\n", map[string]string{"a": "1", "b": "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseCmdline(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
