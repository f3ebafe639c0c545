package network

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
)

func TestPodInterfaceNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  *current.Result
		want []string
	}{
		{"no cached result", nil, []string{"eth0"}},
		{"no interfaces", &current.Result{}, []string{"eth0"}},
		{"host side only", &current.Result{Interfaces: []*current.Interface{{Name: "cni0"}, {Name: "veth1"}}}, []string{"eth0"}},
		{"sandbox interfaces in result order", &current.Result{Interfaces: []*current.Interface{
			{Name: "cni0"}, {Name: "net1", Sandbox: "/ns"}, {Name: "veth1"}, nil, {Name: "eth0", Sandbox: "/ns"},
		}}, []string{"net1", "eth0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := podInterfaceNames(tc.res, "eth0"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("podInterfaceNames = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestInterfaceStats(t *testing.T) {
	s := &netlink.LinkStatistics{
		RxBytes: 1, RxPackets: 2, RxErrors: 3, RxDropped: 4, TxBytes: 5, TxPackets: 6, TxErrors: 7, TxDropped: 8,
		Multicast: 99, Collisions: 99,
	}
	want := InterfaceStats{Name: "eth0", RxBytes: 1, RxPackets: 2, RxErrors: 3, RxDropped: 4, TxBytes: 5, TxPackets: 6, TxErrors: 7, TxDropped: 8}
	if got := interfaceStats("eth0", s); got != want {
		t.Errorf("interfaceStats = %+v, want %+v", got, want)
	}
}

// TestStatsWithoutNetwork covers what needs no namespace: unknown pods and
// pods whose namespace is not mounted are ErrNotFound.
func TestStatsWithoutNetwork(t *testing.T) {
	root := t.TempDir()
	m, err := NewManager(Config{
		StateDir: filepath.Join(root, "state"), ConfDir: filepath.Join(root, "conf"),
		BinDirs: []string{filepath.Join(root, "bin")}, CacheDir: filepath.Join(root, "cache"), IfName: "eth0",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m.Stats(ctx, "unknown"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stats(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := m.Stats(ctx, "../bad"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Stats(../bad) = %v, want ErrInvalidArgument", err)
	}

	// A record whose namespace file is there but not mounted: what a Setup
	// that crashed between its first steps leaves.
	req := PodRequest{ID: "half", Name: "n", Namespace: "ns", UID: "u"}
	if err := m.records.put(podRecord{
		Request: req, NetNS: m.NetNSPath(req.ID), IfName: "eth0",
		ConfList: []byte(`{"cniVersion":"1.0.0","name":"test","plugins":[{"type":"bridge"}]}`),
	}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.NetNSPath(req.ID), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Stats(ctx, req.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stats(unmounted netns) = %v, want ErrNotFound", err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Stats(cancelled, req.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("Stats(cancelled) = %v, want context.Canceled", err)
	}
}
