package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/e2e/critest/images"
	"github.com/podvisor/podvisor/e2e/hoststate"
	"github.com/podvisor/podvisor/network"
)

// daemon is one bin/podvisor process with private directories, all below
// dir, wired to the stand-in registry.
type daemon struct {
	o          options
	dir        string // removed at the end unless --keep
	root       string // --root
	state      string // --state; pod VMs live in state+"-vms"
	sock       string
	nriSock    string // NRI socket; critest's NRI specs connect their plugins to it
	confDir    string // CNI conf dir with the default conflist
	configPath string
	logPath    string
	// crictlConfig points crictl at the daemon (for debugging with --keep);
	// the other two are handed to critest.
	crictlConfig, imagesFile, benchParams string

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	conn   *grpc.ClientConn
	rt     runtime.RuntimeServiceClient
}

// newDaemon lays out the daemon's directory and files; it starts nothing.
func newDaemon(o options, regHost string, imgs []images.Image) (_ *daemon, retErr error) {
	dir, err := os.MkdirTemp("/run", "podvisor-critest-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	// The unprivileged VMM account must traverse to its VM's sockets.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	d := &daemon{o: o, dir: dir,
		root: filepath.Join(dir, "root"), state: filepath.Join(dir, "state"),
		sock: filepath.Join(dir, "sock", "podvisor.sock"), nriSock: filepath.Join(dir, "nri", "nri.sock"), confDir: filepath.Join(dir, "net.d"),
		configPath: filepath.Join(dir, "podvisor.toml"), logPath: filepath.Join(dir, "podvisor.log"),
		crictlConfig: filepath.Join(dir, "crictl.yaml"), imagesFile: filepath.Join(dir, "test-images.yaml"),
		benchParams: filepath.Join(dir, "benchmark.yaml")}
	if _, err := network.WriteDefaultConflist(d.confDir); err != nil {
		return nil, err
	}
	hosts, err := images.Hosts(imgs)
	if err != nil {
		return nil, err
	}
	files := map[string]string{
		d.configPath:   d.config(regHost, hosts),
		d.crictlConfig: "runtime-endpoint: unix://" + d.sock + "\nimage-endpoint: unix://" + d.sock + "\ntimeout: 300\n",
		// The defaults, named so the run does not depend on critest's.
		d.imagesFile:  "defaultTestContainerImage: " + images.BusyboxRef + "\nwebServerTestImage: " + images.NginxRef + "\n",
		d.benchParams: benchmarkParams(),
	}
	for p, content := range files {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// config is the daemon's TOML: the guest image, the CNI dirs, and the local
// registry as the only working endpoint of every registry the images come
// from (the path is kept, so registry.k8s.io/pause:3.9 and
// k8s.gcr.io/pause:3.9 are one image).
func (d *daemon) config(regHost string, hosts []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[podvm]\nguest_dir = %q\ndriver = %q\n\n", d.o.guestDir, d.o.driver)
	fmt.Fprintf(&b, "[cni]\nconf_dir = %q\nbin_dirs = [%q]\n\n", d.confDir, d.o.cniBinDir)
	// critest's NRI specs hold a plugin's hook or Synchronize open for
	// seconds while they look at the runtime; within the default request
	// timeout (2s) the plugin would be disconnected for overrunning it.
	fmt.Fprintf(&b, "[nri]\nenable = true\nsocket_path = %q\nplugin_request_timeout = \"20s\"\n\n", d.nriSock)
	for _, h := range hosts {
		fmt.Fprintf(&b, "[registry.mirrors.%q]\nendpoints = [{ url = \"http://%s\", plain_http = true }]\n\n", h, regHost)
	}
	return b.String()
}

// benchmarkParams sizes critest's benchmarks for TCG pod VMs and points
// the image benchmarks at stand-ins (their defaults are on public.ecr.aws).
func benchmarkParams() string {
	var list []string
	for _, t := range images.PauseTags {
		list = append(list, "  - registry.k8s.io/pause:"+t)
	}
	return `containersNumber: 5
containersNumberParallel: 1
containerBenchmarkTimeoutSeconds: 300
podsNumber: 5
podsNumberParallel: 1
podBenchmarkTimeoutSeconds: 300
imagesNumber: 5
imagesNumberParallel: 1
imageBenchmarkTimeoutSeconds: 120
podContainerStartBenchmarkTimeoutSeconds: 300
imagePullingBenchmarkImage: registry.k8s.io/pause:3.10.1
imageListingBenchmarkImages:
` + strings.Join(list, "\n") + "\n"
}

// start runs the daemon and waits until its socket answers Version.
func (d *daemon) start(ctx context.Context) error {
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	d.cmd = exec.Command(d.o.podvisor, "--address", d.sock, "--root", d.root, "--state", d.state,
		"--config", d.configPath, "--guest-dir", d.o.guestDir, "-v", fmt.Sprint(d.o.verbosity))
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	// Its own process group: a ^C at the terminal reaches the harness,
	// which then tears down in order instead of the daemon dying first.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		return err
	}
	d.exited = make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	fmt.Printf("podvisor started (pid %d) in %s\n", d.cmd.Process.Pid, d.dir)
	d.conn, err = grpc.NewClient("unix://"+d.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	d.rt = runtime.NewRuntimeServiceClient(d.conn)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := d.rt.Version(cctx, &runtime.VersionRequest{})
		cancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case time.Now().After(deadline):
			return fmt.Errorf("daemon did not answer on %s within 2 minutes: %w\n%s", d.sock, err, tail(d.logPath))
		}
		select {
		case <-d.exited:
			return fmt.Errorf("daemon exited: %v\n%s", d.cmd.ProcessState, tail(d.logPath))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// runCritest runs critest against the daemon, its output going to the
// terminal and to critest.log in the report directory.
func runCritest(ctx context.Context, o options, bin string, d *daemon) error {
	for _, f := range []string{"report.json", "junit.xml"} {
		_ = os.Remove(filepath.Join(o.reportDir, f))
	}
	args := []string{
		"--runtime-endpoint", "unix://" + d.sock, "--image-endpoint", "unix://" + d.sock,
		"--test-images-file", d.imagesFile,
		"--nri-socket", d.nriSock,
		// critest v1.37.0 declares --report-dir but writes nothing there:
		// ginkgo's own report flags do the job.
		"--ginkgo.junit-report", filepath.Join(o.reportDir, "junit.xml"),
		"--ginkgo.json-report", filepath.Join(o.reportDir, "report.json"),
		"--ginkgo.no-color", "--ginkgo.timeout", o.suiteTimeout.String(),
	}
	if o.focus != "" {
		args = append(args, "--ginkgo.focus", o.focus)
	}
	if o.skip != "" {
		args = append(args, "--ginkgo.skip", o.skip)
	}
	if o.benchmark {
		args = append(args, "--benchmark", "--benchmarking-params-file", d.benchParams,
			"--benchmarking-output-dir", filepath.Join(o.reportDir, "benchmark"))
		if err := os.MkdirAll(filepath.Join(o.reportDir, "benchmark"), 0o755); err != nil {
			return err
		}
	}
	logf, err := os.Create(filepath.Join(o.reportDir, "critest.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = d.dir
	cmd.Stdout = io.MultiWriter(os.Stdout, logf)
	cmd.Stderr = cmd.Stdout
	cmd.Env = append(os.Environ(), "GINKGO_NO_COLOR=TRUE")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = time.Minute
	fmt.Printf("running %s %s\n", bin, strings.Join(args, " "))
	return cmd.Run()
}

// teardown removes every pod through CRI, stops the daemon, checks the host
// for anything the run left and removes the daemon's directory. It returns
// the leftovers.
func (d *daemon) teardown(before hostState) []string {
	var leftovers []string
	// A fresh context: teardown also runs after an interrupt.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if d.rt != nil && d.running() {
		if pods, err := d.rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{}); err == nil {
			for _, p := range pods.Items {
				// critest removes its pods itself, also after a failure; one
				// still here is worth a note, not a failed run.
				fmt.Printf("teardown: pod sandbox %s (%s) still existed after critest; removing it\n", p.Id, p.GetMetadata().GetName())
				if _, err := d.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
					leftovers = append(leftovers, fmt.Sprintf("stop pod %s: %v", p.Id, err))
				}
				if _, err := d.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
					leftovers = append(leftovers, fmt.Sprintf("remove pod %s: %v", p.Id, err))
				}
			}
		} else {
			leftovers = append(leftovers, fmt.Sprintf("list pods: %v", err))
		}
	}
	if d.conn != nil {
		d.conn.Close()
	}
	if err := d.stop(); err != nil {
		leftovers = append(leftovers, err.Error())
	}
	leftovers = append(leftovers, d.checkHost(before)...)
	if b, err := os.ReadFile(d.logPath); err == nil {
		_ = os.WriteFile(filepath.Join(d.o.reportDir, "podvisor.log"), b, 0o644)
	}
	if d.o.keep {
		fmt.Printf("kept %s\n", d.dir)
		return leftovers
	}
	hoststate.UnmountAll(d.dir)
	if err := os.RemoveAll(d.dir); err != nil {
		leftovers = append(leftovers, fmt.Sprintf("remove %s: %v", d.dir, err))
	}
	return leftovers
}

func (d *daemon) running() bool {
	if d.exited == nil {
		return false
	}
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// stop ends the daemon by its PID: SIGTERM, and SIGKILL after a minute.
func (d *daemon) stop() error {
	if !d.running() {
		return nil
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return nil
	case <-time.After(time.Minute):
		_ = d.cmd.Process.Kill()
		<-d.exited
		return fmt.Errorf("daemon (pid %d) ignored SIGTERM for a minute; killed", d.cmd.Process.Pid)
	}
}

// tail returns the end of a log file.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}
