package cri

import (
	"context"
	"fmt"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// BenchmarkListContainers200 lists 200 containers spread over 4 pod
// sandboxes, half of them running: the relist kubelet's PLEG does every
// second, unfiltered, and the filtered lists of crictl and kubelet.
func BenchmarkListContainers200(b *testing.B) {
	e := newEnv(b)
	e.s.db.NoSync = true // setup speed only: the benchmark reads memory
	ctx := context.Background()
	var pods, ids []string
	for p := range 4 {
		pod := e.runPod(fmt.Sprintf("bench%d", p))
		pods = append(pods, pod)
		for c := range 50 {
			id := e.createCtr(pod, fmt.Sprintf("c%d", c))
			if c%2 == 0 {
				if _, err := e.s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id}); err != nil {
					b.Fatal(err)
				}
			}
			ids = append(ids, id)
		}
	}
	running := &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING}
	for _, bc := range []struct {
		name   string
		filter *runtime.ContainerFilter
		want   int
	}{
		{"all", nil, 200},
		{"running", &runtime.ContainerFilter{State: running}, 100},
		{"sandbox", &runtime.ContainerFilter{PodSandboxId: pods[2]}, 50},
		{"sandbox+running", &runtime.ContainerFilter{PodSandboxId: pods[2], State: running}, 25},
		{"label", &runtime.ContainerFilter{LabelSelector: map[string]string{"ctr": "c7"}}, 4},
		{"id", &runtime.ContainerFilter{Id: ids[123]}, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := &runtime.ListContainersRequest{Filter: bc.filter}
			b.ReportAllocs()
			for b.Loop() {
				r, err := e.s.ListContainers(ctx, req)
				if err != nil || len(r.Containers) != bc.want {
					b.Fatalf("%d containers, %v; want %d", len(r.GetContainers()), err, bc.want)
				}
			}
		})
	}
}
