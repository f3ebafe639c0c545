package network

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// fakeCNI records the configs AddNetwork receives; addFn decides results.
// The embedded interface is nil: other methods are not expected.
type fakeCNI struct {
	libcni.CNI
	confs []map[string]json.RawMessage
	addFn func(i int) (types.Result, error)
}

func (f *fakeCNI) AddNetwork(_ context.Context, net *libcni.PluginConfig, _ *libcni.RuntimeConf) (types.Result, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(net.Bytes, &m); err != nil {
		return nil, err
	}
	f.confs = append(f.confs, m)
	return f.addFn(len(f.confs) - 1)
}

func TestAddChain(t *testing.T) {
	list, err := libcni.NetworkConfFromBytes([]byte(`{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"a"},{"type":"b"},{"type":"c"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	result := func(i int) types.Result {
		return &current.Result{CNIVersion: "1.0.0", Interfaces: []*current.Interface{{Name: strings.Repeat("x", i+1)}}}
	}
	tests := []struct {
		name    string
		failAt  int // -1: none
		calls   int
		wantErr string
	}{
		{"all succeed", -1, 3, ""},
		{"second fails", 1, 2, `plugin type="b" failed (add): boom`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeCNI{addFn: func(i int) (types.Result, error) {
				if i == tt.failAt {
					return nil, errors.New("boom")
				}
				return result(i), nil
			}}
			res, err := addChain(context.Background(), f, list, &libcni.RuntimeConf{})
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil || res.(*current.Result).Interfaces[0].Name != "xxx" {
				t.Fatalf("addChain() = %v, %v; want the last plugin's result", res, err)
			}
			if len(f.confs) != tt.calls {
				t.Fatalf("%d plugins called, want %d", len(f.confs), tt.calls)
			}
			for i, c := range f.confs {
				if string(c["name"]) != `"n"` || string(c["cniVersion"]) != `"1.0.0"` {
					t.Errorf("plugin %d config lacks the list's name/version: %s %s", i, c["name"], c["cniVersion"])
				}
				_, hasPrev := c["prevResult"]
				if hasPrev != (i > 0) {
					t.Errorf("plugin %d: prevResult present = %v", i, hasPrev)
				}
				if i > 0 && !strings.Contains(string(c["prevResult"]), `"name":"`+strings.Repeat("x", i)+`"`) {
					t.Errorf("plugin %d prevResult = %s, want plugin %d's result", i, c["prevResult"], i-1)
				}
			}
		})
	}
}
