package cri

import (
	"context"
	"errors"
	"io"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
)

func TestAttachAndExecStream(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pod := e.runPod("p")
	cid := e.createCtr(pod, "c")
	if _, err := e.s.AttachStream(ctx, cid, StreamOptions{Stdout: true}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("attach to created: %v", err)
	}
	e.s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cid})
	if _, err := e.s.AttachStream(ctx, cid, StreamOptions{Stdin: true}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("stdin on a container without stdin: %v", err)
	}
	a, err := e.s.AttachStream(ctx, cid, StreamOptions{Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	p := e.vms.get(pod).proc(cid)
	go func() {
		p.outW.Write([]byte("to both"))
		p.exit(ExitStatus{})
	}()
	got, _ := io.ReadAll(a.Stdout())
	if string(got) != "to both" {
		t.Fatalf("attached stdout %q", got)
	}
	a.Close()

	cid2 := e.createCtr(pod, "d")
	e.s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cid2})
	e.vms.get(pod).ExecFn = func(p *fakeProc, es ExecSpec) {
		p.outW.Write([]byte("hi"))
		p.exit(ExitStatus{Code: 7})
	}
	x, err := e.s.ExecStream(ctx, cid2, []string{"sh"}, StreamOptions{Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(x.Stdout())
	code, err := x.Wait(ctx)
	if string(out) != "hi" || code != 7 || err != nil || x.Stderr() != nil {
		t.Fatalf("exec stream %q %d %v", out, code, err)
	}
	x.Close()
	if _, err := e.s.PortForwardStream(ctx, pod, 0); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("port 0: %v", err)
	}
}
