//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// usernsJSON is the namespace_options of a pod, and of each of its
// containers, in a user namespace mapping 0 → 1000 over 100000 IDs (mode
// POD is the enum's 0). pid is the container's PID namespace mode.
func usernsJSON(pid runtime.NamespaceMode) string {
	return fmt.Sprintf(`"security_context": {"namespace_options": {"pid": %d, "userns_options": {"mode": 0,
      "uids": [{"container_id": 0, "host_id": 1000, "length": 100000}],
      "gids": [{"container_id": 0, "host_id": 1000, "length": 100000}]}}}`, pid)
}

func (d *daemon) usernsPodJSON(name string) string {
	return d.writeJSON("pod-"+name+".json", fmt.Sprintf(`{
  "metadata": {"name": %q, "namespace": "e2e", "uid": "uid-%s", "attempt": 0},
  "log_directory": %q,
  "linux": {%s}
}`, name, name, filepath.Join(d.dir, "logs", name), usernsJSON(runtime.NamespaceMode_CONTAINER)))
}

func (d *daemon) usernsContainerJSON(name string, pid runtime.NamespaceMode, script string) string {
	return d.writeJSON("ctr-"+name+".json", fmt.Sprintf(`{
  "metadata": {"name": %q},
  "image": {"image": %q},
  "command": ["sh", "-c", %q],
  "log_path": "%s.log",
  "linux": {%s}
}`, name, imageBusybox, script, name, usernsJSON(pid)))
}

// runToExit starts a created container, waits for it to exit 0 and returns
// its output.
func (d *daemon) runToExit(t *testing.T, id string) string {
	t.Helper()
	d.mustCrictl("start", id)
	waitFor(t, 2*time.Minute, "container exit", func() (bool, string) {
		st := d.containerStatus(t, id)
		return st.State == runtime.ContainerState_CONTAINER_EXITED, st.State.String()
	})
	out, _ := d.crictl("logs", id)
	if st := d.containerStatus(t, id); st.ExitCode != 0 {
		t.Fatalf("container exited %d: %s", st.ExitCode, out)
	}
	return out
}

// TestCRIUserNamespaces runs a pod in a user namespace of its guest
// (userns_options mode POD): its containers see the pod's mapping, are
// root in it, own their rootfs (ID-mapped image layers on the host, seen
// through virtio-fs) and write to it as the mapped ID; a PID namespace
// shared by the pod is owned by the user namespace; a daemon restart
// keeps the pod's mapping for new containers. Modes other than NODE and
// POD, and bad mappings, are refused naming the field.
func TestCRIUserNamespaces(t *testing.T) {
	d := startDaemon(t)
	ctx := ctxFor(t, 10*time.Minute)

	st, err := d.rt.Status(ctx, &runtime.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range st.RuntimeHandlers {
		if !h.GetFeatures().GetUserNamespaces() {
			t.Fatalf("handler %q does not advertise user namespaces", h.Name)
		}
	}
	if !strings.Contains(st.Info["config"], `"stateDir":"`+filepath.Join(d.state, "pods")+`"`) {
		t.Errorf("verbose config lacks stateDir: %s", st.Info["config"])
	}

	for _, tc := range []struct {
		name string
		u    *runtime.UserNamespace
	}{
		{"container", &runtime.UserNamespace{Mode: runtime.NamespaceMode_CONTAINER}},
		{"target", &runtime.UserNamespace{Mode: runtime.NamespaceMode_TARGET}},
		{"two-mappings", &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD,
			Uids: []*runtime.IDMapping{{HostId: 1000, Length: 100000}, {HostId: 2000, Length: 100000}},
			Gids: []*runtime.IDMapping{{HostId: 1000, Length: 100000}, {HostId: 2000, Length: 100000}}}},
		{"root-unmapped", &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD,
			Uids: []*runtime.IDMapping{{ContainerId: 1, HostId: 1000, Length: 100000}},
			Gids: []*runtime.IDMapping{{ContainerId: 1, HostId: 1000, Length: 100000}}}},
	} {
		c := podConfig("userns-" + tc.name)
		c.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{UsernsOptions: tc.u}}
		_, err := d.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: c})
		wantStatus(t, tc.name, err, codes.InvalidArgument, "userns_options")
	}

	d.mustCrictl("pull", imageBusybox)
	podCfg := d.usernsPodJSON("userns")
	pod := d.mustCrictl("runp", podCfg)
	script := "cat /proc/self/uid_map; echo uid=$(id -u) gid=$(id -g); touch /etc/x /tmp/x && echo wrote; stat -c 'passwd %u:%g' /etc/passwd"
	ctr := d.mustCrictl("create", pod, d.usernsContainerJSON("first", runtime.NamespaceMode_CONTAINER, script), podCfg)
	out := d.runToExit(t, ctr)
	for _, want := range []string{"0 1000 100000", "uid=0 gid=0", "wrote", "passwd 0:0"} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// What the container wrote belongs to the mapped root on the host.
	for _, f := range []string{"etc/x", "tmp/x"} {
		p := filepath.Join(d.root, "containers", ctr, "upper", f)
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if s := fi.Sys().(*syscall.Stat_t); s.Uid != 1000 || s.Gid != 1000 {
			t.Errorf("%s owned by %d:%d on the host, want 1000:1000", f, s.Uid, s.Gid)
		}
	}

	// After a restart a new container, sharing the pod's PID namespace,
	// joins the same user namespace and can mount its proc. The pod's
	// namespace holder (its PID 1) runs as the namespace's root, the
	// mapped ID, not as the guest's root (which would show as the
	// overflow ID 65534 here).
	d.restart()
	ctr2 := d.mustCrictl("create", pod, d.usernsContainerJSON("second", runtime.NamespaceMode_POD,
		"cat /proc/self/uid_map; readlink /proc/self/ns/user; echo pid=$$; grep -E '^(Uid|Gid|Groups):' /proc/1/status"), podCfg)
	out = d.runToExit(t, ctr2)
	if !strings.Contains(strings.Join(strings.Fields(out), " "), "0 1000 100000") || strings.Contains(out, "pid=1\n") {
		t.Errorf("second container after restart:\n%s", out)
	}
	for _, want := range []string{"Uid: 0 0 0 0", "Gid: 0 0 0 0"} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
			t.Errorf("pod namespace holder: want %q in\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "Groups:" && len(f) > 1 {
			t.Errorf("pod namespace holder has supplementary groups: %q", line)
		}
	}
	d.mustCrictl("stopp", pod)
	d.mustCrictl("rmp", pod)
}
