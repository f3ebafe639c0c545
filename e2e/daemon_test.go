//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/e2e/hoststate"
	"github.com/podvisor/podvisor/e2e/testimage"
)

// The daemon tests run bin/podvisor as kubelet would: over the CRI socket,
// with images from a registry on 127.0.0.1 reached through a configured
// mirror, and a CNI network of their own (bridge e2eBridge, a private
// host-local store) so that they never touch the host's default network.
const (
	e2eRegistryHost = "registry.e2e.test"
	e2eNetwork      = "podvisor-e2e"
	e2eBridge       = "pve2e0"
	e2eSubnet4      = "10.89.0.0/24"
	e2eGateway4     = "10.89.0.1"
	e2eSubnet6      = "fd70:6476:6974::/64"
)

// Images the daemon tests pull, all under e2eRegistryHost (and busybox also
// as docker.io/library/busybox, for short names).
const (
	imageBusybox = e2eRegistryHost + "/e2e/busybox:1"
	imageAppUser = e2eRegistryHost + "/e2e/busybox:app"
)

var (
	registryOnce sync.Once
	registryHost string
	registryErr  error
	// registryDigests maps an image reference to its pushed manifest digest.
	registryDigests = map[string]string{}
)

// testRegistry starts the loopback registry once per test binary and pushes
// the test images.
func testRegistry(t testing.TB) string {
	t.Helper()
	registryOnce.Do(func() {
		reg, err := testimage.StartRegistry()
		if err != nil {
			registryErr = err
			return
		}
		registryHost = reg.Host
		registryErr = pushTestImages(reg)
	})
	if registryErr != nil {
		t.Fatalf("test registry: %v", registryErr)
	}
	return registryHost
}

func pushTestImages(reg *testimage.Registry) error {
	bbLayer, err := testimage.BusyboxLayer()
	if err != nil {
		return err
	}
	images := []struct {
		repoTags []string
		cfg      testimage.Config
	}{
		{[]string{"e2e/busybox:1", "library/busybox:latest"}, testimage.Config{Cmd: []string{"sh"}}},
		{[]string{"e2e/busybox:app"}, testimage.Config{Cmd: []string{"id"}, User: "app", WorkingDir: "/home/app"}},
	}
	for _, im := range images {
		img, err := testimage.Build(im.cfg, bbLayer)
		if err != nil {
			return err
		}
		for _, rt := range im.repoTags {
			ref, err := reg.Push(rt, img)
			if err != nil {
				return err
			}
			d := ref[strings.LastIndex(ref, "@")+1:]
			registryDigests[e2eRegistryHost+"/"+rt] = d
		}
	}
	return nil
}

// e2eConflist is the network of the daemon tests; dataDir is filled in.
const e2eConflist = `{
  "cniVersion": "1.0.0",
  "name": "` + e2eNetwork + `",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "` + e2eBridge + `",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "%s",
        "ranges": [
          [{ "subnet": "` + e2eSubnet4 + `" }],
          [{ "subnet": "` + e2eSubnet6 + `" }]
        ],
        "routes": [{ "dst": "0.0.0.0/0" }, { "dst": "::/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true },
    { "type": "firewall" }
  ]
}
`

// daemon is one bin/podvisor process with private directories.
type daemon struct {
	t          testing.TB
	dir        string // root of everything below; removed at the end
	root       string // --root
	state      string // --state
	sock       string
	confDir    string // CNI conf dir
	ipamDir    string // host-local's store
	configPath string
	logPath    string

	cmd  *exec.Cmd
	conn *grpc.ClientConn
	rt   runtime.RuntimeServiceClient
	img  runtime.ImageServiceClient
}

// daemonOptions adjust a test daemon.
type daemonOptions struct {
	// Conflist replaces the test network's conflist; "%s" in it, if any,
	// becomes host-local's data dir.
	Conflist string
	// CNIBinDirs are searched before /opt/cni/bin (e.g. a failing plugin).
	CNIBinDirs []string
	// ExtraConfig is appended to the daemon's TOML config; it must start
	// with a table header.
	ExtraConfig string
}

// startDaemon starts a daemon wired to the test registry and network. At
// the end of the test it stops the daemon, removes every pod it still has
// through CRI, and checks that nothing it made is left on the host.
func startDaemon(t testing.TB) *daemon {
	t.Helper()
	return startDaemonWith(t, daemonOptions{})
}

func startDaemonWith(t testing.TB, o daemonOptions) *daemon {
	t.Helper()
	if binDir == "" {
		t.Fatal("PODVISOR_BIN_DIR not set (run through make e2e)")
	}
	reg := testRegistry(t)
	dir, err := os.MkdirTemp("/run", "podvisor-e2e-d-")
	if err != nil {
		t.Fatal(err)
	}
	// The VMM account must traverse the state directory to its sockets.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, dir: dir,
		root: filepath.Join(dir, "root"), state: filepath.Join(dir, "state"),
		sock: filepath.Join(dir, "sock", "podvisor.sock"), confDir: filepath.Join(dir, "net.d"),
		ipamDir: filepath.Join(dir, "ipam"), configPath: filepath.Join(dir, "podvisor.toml"),
		logPath: filepath.Join(dir, "podvisor.log")}
	for _, p := range []string{d.confDir, d.ipamDir} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conflist := e2eConflist
	if o.Conflist != "" {
		conflist = o.Conflist
	}
	if strings.Contains(conflist, "%s") {
		conflist = fmt.Sprintf(conflist, d.ipamDir)
	}
	if err := os.WriteFile(filepath.Join(d.confDir, "10-e2e.conflist"), []byte(conflist), 0o644); err != nil {
		t.Fatal(err)
	}
	mirror := fmt.Sprintf("endpoints = [{ url = \"http://%s\", plain_http = true }]\n", reg)
	// The driver is named (vmmselect's own tests cover the automatic
	// choice); the KVM probe still decides on acceleration.
	config := "[podvm]\nguest_dir = '" + guestDir + "'\ndriver = 'qemu'\n\n" +
		"[sandbox]\ndefault_memory_mib = 256\n\n" +
		"[cni]\nconf_dir = '" + d.confDir + "'\nbin_dirs = " + tomlStrings(append(o.CNIBinDirs, "/opt/cni/bin")) + "\n\n" +
		"[registry.mirrors.\"" + e2eRegistryHost + "\"]\n" + mirror + "\n" +
		"[registry.mirrors.\"docker.io\"]\n" + mirror + "\n" + o.ExtraConfig
	if err := os.WriteFile(d.configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	crictlConfig := "runtime-endpoint: unix://" + d.sock + "\nimage-endpoint: unix://" + d.sock + "\ntimeout: 180\n"
	if err := os.WriteFile(filepath.Join(dir, "crictl.yaml"), []byte(crictlConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.cleanup)
	d.start()
	return d
}

// start runs the daemon and waits for its socket to answer Version.
func (d *daemon) start() {
	d.t.Helper()
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	defer logf.Close()
	d.cmd = exec.Command(filepath.Join(binDir, "podvisor"), "--address", d.sock, "--root", d.root,
		"--state", d.state, "--config", d.configPath, "-v", "2")
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.conn, err = grpc.NewClient("unix://"+d.sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)))
	if err != nil {
		d.t.Fatal(err)
	}
	d.rt, d.img = runtime.NewRuntimeServiceClient(d.conn), runtime.NewImageServiceClient(d.conn)
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := d.rt.Version(ctx, &runtime.VersionRequest{})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || d.cmd.ProcessState != nil {
			d.t.Fatalf("daemon did not come up: %v\n%s", err, d.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the daemon with SIGTERM (pods keep running) and waits for it.
func (d *daemon) stop() {
	d.t.Helper()
	if d.cmd == nil {
		return
	}
	d.conn.Close()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			d.t.Errorf("daemon exit: %v\n%s", err, d.log())
		}
	case <-time.After(time.Minute):
		_ = d.cmd.Process.Kill()
		<-done
		d.t.Errorf("daemon ignored SIGTERM for a minute\n%s", d.log())
	}
	d.cmd = nil
}

// restart stops and starts the daemon on the same directories.
func (d *daemon) restart() {
	d.t.Helper()
	d.stop()
	d.start()
}

// log returns the daemon's log (its tail if long).
func (d *daemon) log() string {
	b, _ := os.ReadFile(d.logPath)
	if len(b) > 20000 {
		b = b[len(b)-20000:]
	}
	return string(b)
}

// cleanup removes every pod through CRI, stops the daemon and checks that
// no VM, netns, IP reservation or pod directory is left.
func (d *daemon) cleanup() {
	t := d.t
	if d.cmd != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		if pods, err := d.rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{}); err == nil {
			for _, p := range pods.Items {
				if _, err := d.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
					t.Errorf("cleanup: stop pod %s: %v", p.Id, err)
				}
				if _, err := d.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
					t.Errorf("cleanup: remove pod %s: %v", p.Id, err)
				}
			}
		} else {
			t.Errorf("cleanup: list pods: %v", err)
		}
		cancel()
		d.stop()
	}
	if t.Failed() {
		t.Logf("daemon log:\n%s", d.log())
	}
	d.checkNothingLeft()
	if os.Getenv("PODVISOR_E2E_KEEP") == "" {
		hoststate.UnmountAll(d.dir)
		if err := os.RemoveAll(d.dir); err != nil {
			t.Errorf("remove %s: %v", d.dir, err)
		}
	}
}

// checkNothingLeft fails the test when the daemon's pods left anything on
// the host.
func (d *daemon) checkNothingLeft() {
	t := d.t
	if pids := hoststate.ProcessesMentioning(d.dir); len(pids) > 0 {
		t.Errorf("processes left behind: %v", pids)
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, sub := range []string{d.state + "-vms", filepath.Join(d.state, "pods"), filepath.Join(d.state, "network", "netns")} {
		entries, _ := os.ReadDir(sub)
		for _, e := range entries {
			t.Errorf("left behind in %s: %s", sub, e.Name())
		}
	}
	entries, _ := os.ReadDir(filepath.Join(d.ipamDir, e2eNetwork))
	for _, e := range entries {
		if n := e.Name(); n != "lock" && !strings.HasPrefix(n, "last_reserved_ip") {
			t.Errorf("IP reservation left in host-local's store: %s", n)
		}
	}
	if mounts := hoststate.MountsUnder(d.dir); len(mounts) > 0 {
		t.Errorf("mounts left behind: %v", mounts)
	}
}

// crictl runs crictl against the daemon and returns its stdout; stderr is
// part of the error.
func (d *daemon) crictl(args ...string) (string, error) {
	return d.crictlIn(nil, args...)
}

func (d *daemon) crictlIn(stdin []byte, args ...string) (string, error) {
	bin := os.Getenv("PODVISOR_CRICTL")
	if bin == "" {
		bin = "crictl"
	}
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	cmd.Env = append(os.Environ(), "CRI_CONFIG_FILE="+filepath.Join(d.dir, "crictl.yaml"))
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("crictl %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// mustCrictl is crictl that fails the test on error.
func (d *daemon) mustCrictl(args ...string) string {
	d.t.Helper()
	out, err := d.crictl(args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// writeJSON writes a crictl config file into the daemon's directory.
func (d *daemon) writeJSON(name, content string) string {
	d.t.Helper()
	p := filepath.Join(d.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		d.t.Fatal(err)
	}
	return p
}

// ctx returns a context bounded for one CRI call that may boot a VM.
func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// tomlStrings renders a TOML array of strings.
func tomlStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// crash kills the daemon with SIGKILL, as a crash or an OOM kill would.
func (d *daemon) crash() {
	d.t.Helper()
	d.conn.Close()
	_ = d.cmd.Process.Kill()
	_ = d.cmd.Wait()
	d.cmd = nil
}
