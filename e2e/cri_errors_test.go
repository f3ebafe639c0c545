//go:build e2e

package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// wantStatus fails unless err has code and its message names every word in
// names.
func wantStatus(t *testing.T, what string, err error, code codes.Code, names ...string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Errorf("%s: code %s (%v), want %s", what, st.Code(), err, code)
		return
	}
	for _, n := range names {
		if !strings.Contains(st.Message(), n) {
			t.Errorf("%s: message %q does not name %q", what, st.Message(), n)
		}
	}
}

func podConfig(name string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: name, Namespace: "e2e", Uid: "uid-" + name},
		Hostname: name,
		Linux:    &runtime.LinuxPodSandboxConfig{},
	}
}

// TestCRIErrors sends bad and ill-timed requests to a real daemon: each
// gets the documented code naming the field, and none leaves anything
// behind (the harness checks the host at the end).
func TestCRIErrors(t *testing.T) {
	d := startDaemon(t)
	ctx := ctxFor(t, 5*time.Minute)

	// Refused before any side effect: no VM boots for these.
	hostNet := podConfig("hostnet")
	hostNet.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE}}
	_, err := d.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: hostNet})
	wantStatus(t, "host network", err, codes.InvalidArgument, "network")
	hostPID := podConfig("hostpid")
	hostPID.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_NODE}}
	_, err = d.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: hostPID})
	wantStatus(t, "host pid", err, codes.InvalidArgument, "pid")
	_, err = d.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: &runtime.PodSandboxConfig{}})
	wantStatus(t, "no metadata", err, codes.InvalidArgument, "metadata")
	badSysctl := podConfig("sysctl")
	badSysctl.Linux.Sysctls = map[string]string{"net.ipv4.ip_forward": "1\nkernel.panic=1"}
	_, err = d.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: badSysctl})
	wantStatus(t, "sysctl value with a newline", err, codes.InvalidArgument, "sysctls")
	_, err = d.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("handler"), RuntimeHandler: "no-such-handler"})
	wantStatus(t, "unknown runtime handler", err, codes.InvalidArgument, "runtime_handler")

	// Unknown ids.
	_, err = d.rt.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: "0123456789abcdef"})
	wantStatus(t, "status of unknown container", err, codes.NotFound, "0123456789abcdef")
	_, err = d.rt.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: "fedcba9876543210"})
	wantStatus(t, "status of unknown pod", err, codes.NotFound, "fedcba9876543210")
	_, err = d.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: "fedcba9876543210",
		Config:        &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "c"}, Image: &runtime.ImageSpec{Image: imageBusybox}},
		SandboxConfig: podConfig("x")})
	wantStatus(t, "container in unknown pod", err, codes.NotFound, "fedcba9876543210")
	_, err = d.img.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: e2eRegistryHost + "/e2e/no-such-image:1"}})
	wantStatus(t, "pull of a missing image", err, codes.NotFound, "no-such-image")
	_, err = d.img.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "UPPER/case:bad"}})
	wantStatus(t, "pull of a malformed reference", err, codes.InvalidArgument, "image")
	// Stopping or removing what does not exist succeeds (kubelet retries).
	if _, err := d.rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: "0123456789abcdef"}); err != nil {
		t.Errorf("stop unknown container: %v", err)
	}
	if _, err := d.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: "fedcba9876543210"}); err != nil {
		t.Errorf("remove unknown pod: %v", err)
	}

	// Wrong state and duplicates, in a real pod.
	if _, err := d.img.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: imageBusybox}}); err != nil {
		t.Fatal(err)
	}
	cfg := podConfig("errors")
	cfg.LogDirectory = d.dir + "/logs/errors"
	run, err := d.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
	if st, _ := status.FromError(err); err != nil && st.Code() != codes.AlreadyExists {
		t.Errorf("second RunPodSandbox of the same pod: %v", err)
	}
	ctrCfg := func(name string, args ...string) *runtime.ContainerConfig {
		return &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: name}, Image: &runtime.ImageSpec{Image: imageBusybox},
			Args: args, LogPath: name + ".log", Linux: &runtime.LinuxContainerConfig{}}
	}
	bad := ctrCfg("badimage", "true")
	bad.Image.Image = e2eRegistryHost + "/e2e/never-pulled:1"
	_, err = d.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: run.PodSandboxId, Config: bad, SandboxConfig: cfg})
	wantStatus(t, "container from an image not pulled", err, codes.NotFound, "never-pulled")
	ctr, err := d.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: run.PodSandboxId, Config: ctrCfg("sleeper", "sleep", "3600"), SandboxConfig: cfg})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: run.PodSandboxId, Config: ctrCfg("sleeper", "sleep", "1"), SandboxConfig: cfg})
	wantStatus(t, "duplicate container name", err, codes.AlreadyExists, "sleeper")
	_, err = d.rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: ctr.ContainerId, Cmd: []string{"true"}, Timeout: 10})
	wantStatus(t, "exec in a created container", err, codes.FailedPrecondition)
	if _, err := d.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: ctr.ContainerId}); err != nil {
		t.Fatal(err)
	}
	_, err = d.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: ctr.ContainerId})
	wantStatus(t, "start of a running container", err, codes.FailedPrecondition)
	_, err = d.rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: ctr.ContainerId})
	wantStatus(t, "exec without a command", err, codes.InvalidArgument, "cmd")
	// ExecSync's timeout ends the command and says so.
	start := time.Now()
	_, err = d.rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: ctr.ContainerId, Cmd: []string{"sleep", "60"}, Timeout: 2})
	wantStatus(t, "exec past its timeout", err, codes.DeadlineExceeded)
	if time.Since(start) > 45*time.Second {
		t.Errorf("ExecSync with a 2 s timeout returned after %s", time.Since(start))
	}
	_, err = d.img.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: imageBusybox}})
	wantStatus(t, "remove an image in use", err, codes.FailedPrecondition, "in use")
	_, err = d.rt.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: ctr.ContainerId})
	if err != nil {
		t.Errorf("remove of a running container (kubelet's force semantics): %v", err)
	}
	if _, err := d.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: run.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	_, err = d.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: run.PodSandboxId, Config: ctrCfg("late", "true"), SandboxConfig: cfg})
	wantStatus(t, "container in a stopped pod", err, codes.FailedPrecondition)
	for i := 0; i < 2; i++ {
		if _, err := d.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: run.PodSandboxId}); err != nil {
			t.Errorf("repeated StopPodSandbox: %v", err)
		}
		if _, err := d.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: run.PodSandboxId}); err != nil {
			t.Errorf("repeated RemovePodSandbox: %v", err)
		}
	}
}

// TestReadonlyMountHoldsAgainstGuestRoot gives a privileged container a
// read-only host directory: even root in the guest, remounting it
// read-write, cannot write to the host.
func TestReadonlyMountHoldsAgainstGuestRoot(t *testing.T) {
	d := startDaemon(t)
	d.mustCrictl("pull", imageBusybox)
	host := d.dir + "/ro-volume"
	if err := os.Mkdir(host, 0o755); err != nil {
		t.Fatal(err)
	}
	podCfg := d.writeJSON("pod-rovolume.json", `{
  "metadata": {"name": "rovolume", "namespace": "e2e", "uid": "uid-rovolume"},
  "linux": {"security_context": {"privileged": true}}
}`)
	pod := d.mustCrictl("runp", podCfg)
	ctrCfg := d.writeJSON("ctr-writer.json", `{
  "metadata": {"name": "writer"},
  "image": {"image": "`+imageBusybox+`"},
  "args": ["sleep", "3600"],
  "mounts": [{"host_path": "`+host+`", "container_path": "/data", "readonly": true}],
  "linux": {"security_context": {"privileged": true}}
}`)
	ctr := d.mustCrictl("create", pod, ctrCfg, podCfg)
	d.mustCrictl("start", ctr)
	out, _ := d.crictl("exec", ctr, "sh", "-c", "touch /data/plain; mount -o remount,rw /data; touch /data/remounted; mount -o remount,rw,bind /data; touch /data/rebound; ls /data")
	entries, _ := os.ReadDir(host)
	if len(entries) != 0 {
		t.Errorf("a read-only host directory was written from the guest: %v (container saw %q)", entries, out)
	}
}
