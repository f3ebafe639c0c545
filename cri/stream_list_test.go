package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestSendChunks(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []int
	}{{0, nil}, {1, []int{1}}, {100, []int{100}}, {250, []int{100, 100, 50}}} {
		var got []int
		err := sendChunks(make([]int, tc.n), func(c []int) error { got = append(got, len(c)); return nil })
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%d items: chunks %v, want %v", tc.n, got, tc.want)
		}
	}
	stop := errors.New("client gone")
	calls := 0
	if err := sendChunks(make([]int, 250), func([]int) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("send error: %v after %d calls", err, calls)
	}
}

// TestStreamRPCs: the Stream* RPCs return what List* returns, over gRPC.
func TestStreamRPCs(t *testing.T) {
	e := newEnv(t)
	e.s.db.NoSync = true
	rc, ic, _ := startServer(t, e, 0, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pod := e.runPod("p")
	for i := range 120 {
		e.createCtr(pod, fmt.Sprintf("c%d", i))
	}
	count := func(recv func() (int, error)) int {
		t.Helper()
		n := 0
		for {
			k, err := recv()
			if err == io.EOF {
				return n
			}
			if err != nil {
				t.Fatal(err)
			}
			if k == 0 {
				t.Fatal("empty response")
			}
			n += k
		}
	}
	cs, err := rc.StreamContainers(ctx, &runtime.StreamContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := count(func() (int, error) { r, err := cs.Recv(); return len(r.GetContainers()), err }); n != 120 {
		t.Errorf("StreamContainers: %d containers", n)
	}
	cs, _ = rc.StreamContainers(ctx, &runtime.StreamContainersRequest{Filter: &runtime.ContainerFilter{LabelSelector: map[string]string{"ctr": "none"}}})
	if n := count(func() (int, error) { r, err := cs.Recv(); return len(r.GetContainers()), err }); n != 0 {
		t.Errorf("StreamContainers filtered: %d containers", n)
	}
	ss, _ := rc.StreamPodSandboxes(ctx, &runtime.StreamPodSandboxesRequest{})
	if n := count(func() (int, error) { r, err := ss.Recv(); return len(r.GetPodSandboxes()), err }); n != 1 {
		t.Errorf("StreamPodSandboxes: %d", n)
	}
	st, _ := rc.StreamContainerStats(ctx, &runtime.StreamContainerStatsRequest{})
	if n := count(func() (int, error) { r, err := st.Recv(); return len(r.GetContainerStats()), err }); n != 120 {
		t.Errorf("StreamContainerStats: %d", n)
	}
	ps, _ := rc.StreamPodSandboxStats(ctx, &runtime.StreamPodSandboxStatsRequest{})
	if n := count(func() (int, error) { r, err := ps.Recv(); return len(r.GetPodSandboxStats()), err }); n != 1 {
		t.Errorf("StreamPodSandboxStats: %d", n)
	}
	pm, _ := rc.StreamPodSandboxMetrics(ctx, &runtime.StreamPodSandboxMetricsRequest{})
	if n := count(func() (int, error) { r, err := pm.Recv(); return len(r.GetPodSandboxMetrics()), err }); n != 1 {
		t.Errorf("StreamPodSandboxMetrics: %d", n)
	}
	is, _ := ic.StreamImages(ctx, &runtime.StreamImagesRequest{})
	if n := count(func() (int, error) { r, err := is.Recv(); return len(r.GetImages()), err }); n != 1 {
		t.Errorf("StreamImages: %d", n)
	}
}
