//go:build e2e

package e2e

import (
	"fmt"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criSamples is how many pods the CRI benchmark runs, one after another.
const criSamples = 6

// BenchmarkCRILifecycle measures kubelet's pod lifecycle through a real
// daemon over its CRI socket: RunPodSandbox (network + VM boot + guest
// network), CreateContainer+StartContainer, an ExecSync round trip, and
// StopPodSandbox+RemovePodSandbox. It prints one table (p50/p90).
func BenchmarkCRILifecycle(b *testing.B) {
	d := startDaemon(b)
	ctx := ctxFor(b, 30*time.Minute)
	if _, err := d.img.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: imageBusybox}}); err != nil {
		b.Fatal(err)
	}
	var run, start, exec, teardown []time.Duration
	for i := 0; i < criSamples; i++ {
		cfg := podConfig(fmt.Sprintf("bench-%d", i))
		t0 := time.Now()
		pod, err := d.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
		if err != nil {
			b.Fatal(err)
		}
		run = append(run, time.Since(t0))

		t0 = time.Now()
		ctr, err := d.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, SandboxConfig: cfg,
			Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "app"}, Image: &runtime.ImageSpec{Image: imageBusybox},
				Args: []string{"sleep", "3600"}, Linux: &runtime.LinuxContainerConfig{}}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: ctr.ContainerId}); err != nil {
			b.Fatal(err)
		}
		start = append(start, time.Since(t0))

		// The first exec warms the guest's page cache; time the second.
		for j := 0; j < 2; j++ {
			t0 = time.Now()
			resp, err := d.rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: ctr.ContainerId, Cmd: []string{"true"}, Timeout: 60})
			if err != nil || resp.ExitCode != 0 {
				b.Fatalf("exec: %v %v", err, resp)
			}
		}
		exec = append(exec, time.Since(t0))

		t0 = time.Now()
		if _, err := d.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
			b.Fatal(err)
		}
		if _, err := d.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
			b.Fatal(err)
		}
		teardown = append(teardown, time.Since(t0))
	}
	fmt.Printf("\nCRI pod lifecycle through the daemon (QEMU, %d pods, 1 vCPU, 256 MiB, one container each)\n", criSamples)
	fmt.Printf("%-40s %10s %10s\n", "operation", "p50", "p90")
	for _, row := range []struct {
		name string
		d    []time.Duration
	}{
		{"RunPodSandbox", run},
		{"CreateContainer + StartContainer", start},
		{"ExecSync round trip (true)", exec},
		{"StopPodSandbox + RemovePodSandbox", teardown},
	} {
		p50, p90 := percentiles(row.d)
		fmt.Printf("%-40s %10s %10s\n", row.name, ms(p50), ms(p90))
	}
}
