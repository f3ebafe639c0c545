//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podvisor/podvisor/podvm"
)

// ctrEnv is a pod VM with a shared directory, a busybox image layer and an
// upper-dir root on the host.
type ctrEnv struct {
	*env
	vm        *podvm.VM
	shared    string
	lower     string
	upperRoot string
}

func newCtrEnv(t *testing.T, id string) *ctrEnv {
	t.Helper()
	e := newEnv(t, "")
	c := &ctrEnv{env: e}
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	mk := func(name string) string {
		d := filepath.Join(e.stateDir, "share-"+name+"-"+suffix)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	c.shared, c.lower, c.upperRoot = mk("pod"), mk("lower"), mk("upper")
	buildBusyboxLayer(t, c.lower)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	console := filepath.Join(e.stateDir, "share-console-"+id+".log")
	vm, err := e.mgr.Boot(ctx, podvm.Spec{ID: id, VCPUs: 1, MemoryMiB: 512, SharedDir: c.shared, ConsoleLog: console})
	if err != nil {
		b, _ := os.ReadFile(console)
		t.Fatalf("boot %s: %v\nguest console:\n%s", id, err, b)
	}
	t.Cleanup(func() {
		if err := vm.Stop(context.Background()); err != nil {
			t.Errorf("stop %s: %v", id, err)
		}
		if t.Failed() {
			b, _ := os.ReadFile(console)
			t.Logf("guest console:\n%s", b)
		}
	})
	c.vm = vm
	return c
}

// buildBusyboxLayer makes an image layer of Debian's busybox-static.
func buildBusyboxLayer(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := copyFile(busyboxPath, filepath.Join(dir, "bin", "busybox"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "echo", "cat", "sleep", "id", "ls", "test", "touch", "hostname"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
	if err := os.WriteFile(filepath.Join(dir, "etc", "passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
}

// rootfs prepares a container's rootfs and registers its cleanup.
func (c *ctrEnv) rootfs(t *testing.T, id string) string {
	t.Helper()
	guestPath, err := c.vm.PrepareRootfs(context.Background(), id, []string{c.lower}, c.upperRoot, podvm.IDMapping{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.vm.ReleaseContainerFiles(id, c.upperRoot); err != nil {
			t.Errorf("rootfs cleanup %s: %v", id, err)
		}
	})
	return guestPath
}

var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// minimalSpec is the kind of OCI spec the CRI layer builds.
func minimalSpec(id, rootfs string, terminal bool, args ...string) *specs.Spec {
	return &specs.Spec{
		Version:  specs.Version,
		Hostname: "ctr",
		Root:     &specs.Root{Path: rootfs},
		Process: &specs.Process{
			Terminal: terminal,
			Args:     args,
			Env:      []string{"PATH=/bin", "HOME=/root"},
			Cwd:      "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: defaultCaps, Effective: defaultCaps, Permitted: defaultCaps,
			},
			NoNewPrivileges: true,
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: "/podvisor/" + id,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace}, {Type: specs.CgroupNamespace},
			},
			MaskedPaths: []string{
				"/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
				"/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
			},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
}

// collect reads a process's outputs and waits for it.
func collect(t *testing.T, p *podvm.Process) (string, string, podvm.ExitStatus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	read := func(r io.Reader) chan string {
		ch := make(chan string, 1)
		go func() {
			if r == nil {
				ch <- ""
				return
			}
			b, _ := io.ReadAll(r)
			ch <- string(b)
		}()
		return ch
	}
	outc, errc := read(p.Stdout), read(p.Stderr)
	st, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("wait %s: %v", p.ID(), err)
	}
	return <-outc, <-errc, st
}

func ctx2m(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestContainers runs OCI containers with runc in one pod VM.
func TestContainers(t *testing.T) {
	c := newCtrEnv(t, "ctrs")
	vm := c.vm

	t.Run("run to completion with output, exit code and a write to the upper dir", func(t *testing.T) {
		ctx := ctx2m(t)
		id := "c-run"
		spec := minimalSpec(id, c.rootfs(t, id), false, "sh", "-c", "echo hello; echo oops >&2; echo data > /written; exit 3")
		p, err := vm.CreateContainer(ctx, podvm.ContainerSpec{ID: id, Spec: spec, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatal(err)
		}
		defer vm.DeleteContainer(context.Background(), id)
		if err := vm.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		out, errOut, st := collect(t, p)
		if out != "hello\n" || errOut != "oops\n" || st.Code != 3 {
			t.Fatalf("out=%q err=%q status=%+v", out, errOut, st)
		}
		b, err := os.ReadFile(filepath.Join(c.upperRoot, id, "upper", "written"))
		if err != nil || string(b) != "data\n" {
			t.Fatalf("upper dir file: %q, %v", b, err)
		}
		if err := vm.DeleteContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("exec, terminal, stats, update, kill, delete and re-create", func(t *testing.T) {
		ctx := ctx2m(t)
		id := "c-long"
		rootfs := c.rootfs(t, id)
		p, err := vm.CreateContainer(ctx, podvm.ContainerSpec{ID: id, Spec: minimalSpec(id, rootfs, false, "sleep", "1000")})
		if err != nil {
			t.Fatal(err)
		}
		defer vm.DeleteContainer(context.Background(), id)
		if err := vm.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}

		exec := func(eid string, terminal bool, args ...string) (string, podvm.ExitStatus) {
			t.Helper()
			proc := minimalSpec(id, rootfs, terminal, args...).Process
			ep, err := vm.Exec(ctx, id, podvm.ExecSpec{ID: eid, Process: proc, Stdout: true, Stderr: !terminal})
			if err != nil {
				t.Fatalf("exec %v: %v", args, err)
			}
			out, errOut, st := collect(t, ep)
			if errOut != "" {
				t.Logf("exec %v stderr: %q", args, errOut)
			}
			if err := ep.Remove(ctx); err != nil {
				t.Errorf("remove %s: %v", eid, err)
			}
			return out, st
		}
		if out, st := exec("e1", false, "sh", "-c", "echo in-exec; ls /proc/1/exe >/dev/null; exit 5"); out != "in-exec\n" || st.Code != 5 {
			t.Fatalf("exec: out=%q status=%+v", out, st)
		}
		if out, st := exec("e2", true, "sh", "-c", "test -t 1 && echo is-a-tty"); !strings.Contains(out, "is-a-tty") || st.Code != 0 {
			t.Fatalf("terminal exec: out=%q status=%+v", out, st)
		}

		stats, err := vm.ContainerStats(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if stats.MemoryUsage == 0 || stats.PIDs == 0 {
			t.Fatalf("stats %+v: want non-zero memory and pids", stats)
		}
		t.Logf("stats: %+v", stats)

		limit := int64(64 << 20)
		if err := vm.UpdateContainerResources(ctx, id, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}}); err != nil {
			t.Fatal(err)
		}
		if out, st := exec("e3", false, "cat", "/sys/fs/cgroup/memory.max"); strings.TrimSpace(out) != strconv.FormatInt(limit, 10) || st.Code != 0 {
			t.Fatalf("memory.max in the container: %q, status %+v", out, st)
		}

		if err := p.Signal(ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		st, err := p.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Code != 137 || st.Signal != syscall.SIGKILL {
			t.Fatalf("killed container: %+v, want 137", st)
		}
		if err := vm.DeleteContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := vm.DeleteContainer(ctx, id); err != nil {
			t.Fatalf("second delete: %v", err)
		}

		// kubelet-style restart: the same id again, on the same rootfs.
		p, err = vm.CreateContainer(ctx, podvm.ContainerSpec{ID: id, Spec: minimalSpec(id, rootfs, false, "echo", "again"), Stdout: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := vm.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		if out, _, st := collect(t, p); out != "again\n" || st.Code != 0 {
			t.Fatalf("re-created container: out=%q status=%+v", out, st)
		}
		if err := vm.DeleteContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("network files bind-mounted into a container", func(t *testing.T) {
		ctx := ctx2m(t)
		err := vm.ConfigureNetwork(ctx, podvm.NetworkConfig{
			Hostname: "pod-a",
			DNS:      podvm.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"default.svc.cluster.local"}, Options: []string{"ndots:5"}},
			Sysctls:  map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"},
		})
		if err != nil {
			t.Fatal(err)
		}
		id := "c-net"
		spec := minimalSpec(id, c.rootfs(t, id), false, "sh", "-c", "cat /etc/resolv.conf /etc/hostname; cat /etc/hosts | head -1")
		for _, f := range []string{"resolv.conf", "hostname", "hosts"} {
			spec.Mounts = append(spec.Mounts, specs.Mount{
				Destination: "/etc/" + f, Type: "bind", Source: podvm.GuestNetDir + "/" + f,
				Options: []string{"rbind", "ro"},
			})
		}
		p, err := vm.CreateContainer(ctx, podvm.ContainerSpec{ID: id, Spec: spec, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatal(err)
		}
		defer vm.DeleteContainer(context.Background(), id)
		if err := vm.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		out, errOut, st := collect(t, p)
		want := "nameserver 10.96.0.10\nsearch default.svc.cluster.local\noptions ndots:5\npod-a\n"
		if !strings.HasPrefix(out, want) || st.Code != 0 {
			t.Fatalf("out=%q err=%q status=%+v", out, errOut, st)
		}
		if err := vm.DeleteContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("refused specs", func(t *testing.T) {
		ctx := ctx2m(t)
		spec := minimalSpec("bad", "/etc", false, "true")
		_, err := vm.CreateContainer(ctx, podvm.ContainerSpec{ID: "bad", Spec: spec})
		if err == nil || !strings.Contains(err.Error(), "root.path") {
			t.Fatalf("rootfs outside the share: %v", err)
		}
		spec = minimalSpec("bad", podvm.GuestContainersDir+"/bad/rootfs", false, "true")
		spec.Hooks = &specs.Hooks{}
		if _, err := vm.CreateContainer(ctx, podvm.ContainerSpec{ID: "bad", Spec: spec}); err == nil || !bytes.Contains([]byte(err.Error()), []byte("hooks")) {
			t.Fatalf("hooks: %v", err)
		}
	})
}
