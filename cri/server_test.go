package cri

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// startServer serves e's service on a temp unix socket through the real
// interceptors and returns CRI clients.
func startServer(t *testing.T, e *env, rps float64, burst int) (runtime.RuntimeServiceClient, runtime.ImageServiceClient, string) {
	t.Helper()
	auditPath := filepath.Join(e.paths.Root, "audit.log")
	audit, err := OpenAuditLog(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewGRPCServer(e.s, NewInterceptors(rps, burst, audit))
	sock := filepath.Join(e.paths.State, "sock", "podvisor.sock")
	l, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Stop(); audit.Close() })
	for p, want := range map[string]os.FileMode{sock: 0o600, filepath.Dir(sock): 0o700, auditPath: 0o600} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s mode %v, want %v (%v)", p, fi.Mode().Perm(), want, err)
		}
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtime.NewRuntimeServiceClient(conn), runtime.NewImageServiceClient(conn), auditPath
}

func TestGRPCEndToEnd(t *testing.T) {
	e := newEnv(t)
	rc, ic, auditPath := startServer(t, e, 0, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	v, err := rc.Version(ctx, &runtime.VersionRequest{})
	if err != nil || v.RuntimeName != "podvisor" || v.RuntimeApiVersion != "v1" {
		t.Fatalf("version %v %v", v, err)
	}
	st, err := rc.Status(ctx, &runtime.StatusRequest{})
	if err != nil || len(st.Status.Conditions) != 2 || !st.Status.Conditions[0].Status || !st.Status.Conditions[1].Status {
		t.Fatalf("status %v %v", st, err)
	}
	e.net.StatusErr = os.ErrNotExist
	st, _ = rc.Status(ctx, &runtime.StatusRequest{})
	if c := st.Status.Conditions[1]; c.Type != runtime.NetworkReady || c.Status || c.Reason != "NetworkPluginNotReady" || c.Message == "" {
		t.Fatalf("network condition %+v", c)
	}
	if rcfg, err := rc.RuntimeConfig(ctx, &runtime.RuntimeConfigRequest{}); err != nil || rcfg.Linux.CgroupDriver != runtime.CgroupDriver_CGROUPFS {
		t.Fatalf("runtime config %v %v", rcfg, err)
	}

	// Error kinds become codes at the edge.
	for _, tc := range []struct {
		call func() error
		want codes.Code
	}{
		{func() error {
			_, err := rc.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: &runtime.PodSandboxConfig{}})
			return err
		}, codes.InvalidArgument},
		{func() error {
			_, err := rc.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: "feed"})
			return err
		}, codes.NotFound},
		{func() error {
			_, err := rc.CheckpointContainer(ctx, &runtime.CheckpointContainerRequest{ContainerId: "x"})
			return err
		}, codes.Unimplemented},
		{func() error {
			_, err := rc.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: "feed"})
			return err
		}, codes.OK},
	} {
		if got := status.Code(tc.call()); got != tc.want {
			t.Errorf("code %v, want %v", got, tc.want)
		}
	}

	// A pod's life through the generated client.
	if _, err := ic.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "nginx"}}); err != nil {
		t.Fatal(err)
	}
	pod, err := rc.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("grpc")})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := rc.GetContainerEvents(ctx, &runtime.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let the subscription register
	c, err := rc.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, Config: ctrConfig("c")})
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := evs.Recv(); err != nil || ev.ContainerId != c.ContainerId || ev.ContainerEventType != runtime.ContainerEventType_CONTAINER_CREATED_EVENT {
		t.Fatalf("event %v %v", ev, err)
	}
	if _, err := rc.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
		t.Fatal(err)
	}

	// One audit line per mutating RPC, with its ids and code.
	f, err := os.Open(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []AuditRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r AuditRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	want := []struct{ method, code string }{
		{"RunPodSandbox", "InvalidArgument"}, {"CheckpointContainer", "Unimplemented"}, {"StopContainer", "OK"},
		{"PullImage", "OK"}, {"RunPodSandbox", "OK"}, {"CreateContainer", "OK"}, {"StartContainer", "OK"}, {"RemovePodSandbox", "OK"},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d audit records, want %d: %+v", len(recs), len(want), recs)
	}
	for i, w := range want {
		if recs[i].Method != w.method || recs[i].Code != w.code || recs[i].RequestID == "" {
			t.Errorf("audit %d: %+v, want %s %s", i, recs[i], w.method, w.code)
		}
	}
	if recs[4].PodSandboxID != pod.PodSandboxId || recs[5].ContainerID != c.ContainerId || recs[5].PodSandboxID != pod.PodSandboxId || recs[3].Image != "nginx" {
		t.Errorf("audit ids: %+v", recs[3:6])
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t)
	rc, _, _ := startServer(t, e, 0.001, 2)
	ctx := context.Background()
	var codesSeen []codes.Code
	for range 4 {
		_, err := rc.Version(ctx, &runtime.VersionRequest{})
		codesSeen = append(codesSeen, status.Code(err))
	}
	want := []codes.Code{codes.OK, codes.OK, codes.ResourceExhausted, codes.ResourceExhausted}
	for i := range want {
		if codesSeen[i] != want[i] {
			t.Fatalf("codes %v, want %v", codesSeen, want)
		}
	}
}
