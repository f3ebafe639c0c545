package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// fakeRunc stands in for runc: `create` leaves behind an orphan running the
// command in <bundle>/../<id>.cmd with runc's stdio, writes its pid and
// exits, as runc create does (minus the namespaces); like runc's init, the
// orphan waits for `start` before running the command. The other commands
// succeed.
const fakeRunc = `#!/bin/sh
cmd=""; bundle=""; pidfile=""
while [ $# -gt 1 ]; do
	case "$1" in
	create|start|delete|exec|update) cmd=$1 ;;
	--bundle) bundle=$2; shift ;;
	--pid-file) pidfile=$2; shift ;;
	--root|--log|--log-format|--process|--console-socket|--resources) shift ;;
	esac
	shift
done
id=$1
case "$cmd" in
create)
	gate="$(dirname "$0")/$id.started"
	rm -f "$gate"
	( sh -c 'while [ ! -e "$1" ]; do sleep 0.01; done; rm -f "$1"; eval "$2"' gate "$gate" "$(cat "$bundle/../$id.cmd")" & echo $! > "$pidfile" )
	;;
start) touch "$(dirname "$0")/$id.started" ;;
delete) exit 0 ;;
esac
exit 0
`

func newContainerFixture(t *testing.T) (*fixture, string) {
	t.Helper()
	dir := t.TempDir()
	runc := filepath.Join(dir, "runc")
	if err := os.WriteFile(runc, []byte(fakeRunc), 0o755); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "run")
	for _, d := range []string{"shared/containers/c1/rootfs", "net", "bundles"} {
		if err := os.MkdirAll(filepath.Join(run, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f := newFixture(t, func(c *Config) {
		c.Containers = ContainerConfig{Runc: runc, RuncRoot: filepath.Join(dir, "runc-root"), RunDir: run}
	})
	return f, run
}

// TestCreateContainerFollowsOrphan creates containers through the fake runc
// whose init exits at once (its status is held until adopted) or later,
// and checks output, exit code, signalling and delete + re-create.
func TestCreateContainerFollowsOrphan(t *testing.T) {
	f, run := newContainerFixture(t)
	ctx := ctxFor(t)
	spec := goodSpec()
	spec.Root.Path = filepath.Join(run, "shared/containers/c1/rootfs")
	spec.Mounts = nil
	data, _ := json.Marshal(spec)
	create := func(script string) *collector {
		t.Helper()
		if err := os.WriteFile(filepath.Join(run, "bundles", "c1.cmd"), []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		out := f.broker.open("c1", StreamStdout)
		if _, err := f.client.CreateContainer(ctx, &agentpb.CreateContainerRequest{Id: "c1", BundleSpec: data, Stdout: true}); err != nil {
			t.Fatal(err)
		}
		return collect(out)
	}
	for i := 0; i < 10; i++ {
		out := create("echo hi; exit 4")
		if _, err := f.client.StartContainer(ctx, &agentpb.StartContainerRequest{Id: "c1"}); err != nil {
			t.Fatal(err)
		}
		if w := f.wait(t, "c1"); w.ExitCode != 4 {
			t.Fatalf("exit code %d, want 4", w.ExitCode)
		}
		if got := out.wait(t); got != "hi\n" {
			t.Fatalf("output %q", got)
		}
		_, err := f.client.CreateContainer(ctx, &agentpb.CreateContainerRequest{Id: "c1", BundleSpec: data})
		wantCode(t, err, codes.AlreadyExists, "c1")
		if _, err := f.client.DeleteContainer(ctx, &agentpb.DeleteContainerRequest{Id: "c1"}); err != nil {
			t.Fatal(err)
		}
	}

	out := create("exec sleep 30")
	if _, err := f.client.SignalProcess(ctx, &agentpb.SignalProcessRequest{Id: "c1", Signal: 9}); err != nil {
		t.Fatal(err)
	}
	if w := f.wait(t, "c1"); w.ExitCode != 137 || w.Signal != 9 {
		t.Fatalf("killed: %+v", w)
	}
	out.wait(t)
	list, err := f.client.ListContainers(ctx, &agentpb.Empty{})
	if err != nil || len(list.Containers) != 1 || list.Containers[0].Status != "stopped" {
		t.Fatalf("list: %v, %v", list, err)
	}
	for i := 0; i < 2; i++ { // idempotent
		if _, err := f.client.DeleteContainer(ctx, &agentpb.DeleteContainerRequest{Id: "c1"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(run, "bundles", "c1")); !os.IsNotExist(err) {
		t.Fatalf("bundle left: %v", err)
	}
	_, err = f.client.InspectProcess(ctx, &agentpb.InspectProcessRequest{Id: "c1"})
	wantCode(t, err, codes.NotFound, "c1")
}
