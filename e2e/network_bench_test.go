//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/e2e/tcpbench"
	"github.com/podvisor/podvisor/e2e/testimage"
	"github.com/podvisor/podvisor/network"
)

const (
	// netSetupSamples is how many pod networks the setup measurement makes.
	netSetupSamples = 10
	// tcpRuns is how many transfers each direction gets; each sends
	// tcpBytes or for tcpTime, whichever ends first (TCG is slow).
	tcpRuns  = 3
	tcpBytes = 128 << 20
	tcpTime  = 5 * time.Second
	// tcpPort is where the pod's tcpbench server listens.
	tcpPort = 5201
	// tcpbenchRegistryHost is the made-up registry the tcpbench image is
	// pulled from, mirrored to a loopback registry of the benchmark's own.
	tcpbenchRegistryHost = "net.e2e.test"
	tcpbenchImage        = tcpbenchRegistryHost + "/e2e/tcpbench:1"
)

// BenchmarkNetwork measures pod networking and prints one table: the host
// side of a pod network (netns, CNI ADD of bridge, portmap and firewall,
// tap wiring) and its teardown through the network package, as the daemon
// runs them, then TCP throughput pod to pod, host to pod and pod to host
// between two pod VMs with the tcpbench program.
func BenchmarkNetwork(b *testing.B) {
	removeNetBridgeAtEnd(b)
	setup, teardown := measureNetworkSetup(b)

	reg := tcpbenchRegistry(b)
	d := startNetDaemon(b, daemonOptions{ExtraConfig: "[registry.mirrors.\"" + tcpbenchRegistryHost + "\"]\n" +
		"endpoints = [{ url = \"http://" + reg + "\", plain_http = true }]\n"})
	pullNetImage(b, d, tcpbenchImage)

	var runPod []time.Duration
	boot := func(name string) (string, *runtime.PodSandboxConfig) {
		cfg := netPodConfig(d, name)
		start := time.Now()
		id := runNetPod(b, d, cfg)
		runPod = append(runPod, time.Since(start))
		return id, cfg
	}
	server, serverCfg := boot("bench-server")
	client, clientCfg := boot("bench-client")
	serverIP, _ := podNetStatus(b, d, server)
	serverCtr := startNetContainer(b, d, server, serverCfg, "tcpbench", tcpbenchImage,
		[]string{"tcpbench", "server", "-listen", ":" + strconv.Itoa(tcpPort)})
	clientCtr := startNetContainer(b, d, client, clientCfg, "idle", tcpbenchImage, []string{"sleep", "3600"})
	serverAddr := net.JoinHostPort(serverIP.String(), strconv.Itoa(tcpPort))
	waitFor(b, 2*time.Minute, "tcpbench server in the pod", func() (bool, string) {
		c, err := net.DialTimeout("tcp", serverAddr, 2*time.Second)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})

	// The host's server, on the bridge address pods reach it by.
	ln, err := net.Listen("tcp", net.JoinHostPort(netGW4, "0"))
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go tcpbench.Serve(ln)

	sendFromPod := func(ctr, to string) tcpbench.Result {
		out := netExec(b, d, ctr, tcpTime+time.Minute, "tcpbench", "send", "-to", to,
			"-bytes", strconv.Itoa(tcpBytes), "-time", tcpTime.String())
		var r tcpbench.Result
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			b.Fatalf("tcpbench output %q: %v", out, err)
		}
		return r
	}
	directions := []struct {
		name, metric string
		send         func() tcpbench.Result
	}{
		{"pod → pod", "pod-to-pod-MB/s", func() tcpbench.Result { return sendFromPod(clientCtr, serverAddr) }},
		{"host → pod", "host-to-pod-MB/s", func() tcpbench.Result {
			ctx, cancel := context.WithTimeout(context.Background(), tcpTime+time.Minute)
			defer cancel()
			r, err := tcpbench.Send(ctx, serverAddr, tcpBytes, tcpTime)
			if err != nil {
				b.Fatal(err)
			}
			return r
		}},
		{"pod → host", "pod-to-host-MB/s", func() tcpbench.Result { return sendFromPod(serverCtr, ln.Addr().String()) }},
	}
	results := make([][]tcpbench.Result, len(directions))
	for i, dir := range directions {
		for range tcpRuns {
			results[i] = append(results[i], dir.send())
		}
	}

	stopAndRemovePod(b, d, server)
	stopAndRemovePod(b, d, client)

	medS, maxS := medianMax(setup)
	medT, maxT := medianMax(teardown)
	medR, maxR := medianMax(runPod)
	b.ReportMetric(float64(medS.Microseconds())/1000, "setup-ms")
	b.ReportMetric(float64(medT.Microseconds())/1000, "teardown-ms")
	fmt.Printf("\nPod networking (bridge + portmap + firewall, tap wired with tc mirred; QEMU, 1 vCPU, 256 MiB per pod)\n")
	fmt.Printf("%-52s %10s %10s\n", "measure", "median", "max")
	fmt.Printf("%-52s %10s %10s\n", fmt.Sprintf("network setup per pod: netns + CNI ADD + tap (n=%d)", len(setup)), msFrac(medS), msFrac(maxS))
	fmt.Printf("%-52s %10s %10s\n", fmt.Sprintf("network teardown per pod: CNI DEL + netns (n=%d)", len(teardown)), msFrac(medT), msFrac(maxT))
	fmt.Printf("%-52s %10s %10s\n", fmt.Sprintf("RunPodSandbox: network + VM boot (n=%d)", len(runPod)), msFrac(medR), msFrac(maxR))
	fmt.Printf("\nTCP throughput, MB/s (10^6 B/s), %d runs of %d MiB or %s each\n", tcpRuns, tcpBytes>>20, tcpTime)
	fmt.Printf("%-52s %10s %10s %10s\n", "direction", "median", "min", "max")
	for i, dir := range directions {
		med, lo, hi := mbpsStats(results[i])
		b.ReportMetric(med, dir.metric)
		fmt.Printf("%-52s %10.1f %10.1f %10.1f\n", dir.name, med, lo, hi)
	}
}

// measureNetworkSetup sets up and tears down netSetupSamples pod networks
// with the network package on the benchmark's network.
func measureNetworkSetup(b *testing.B) (setup, teardown []time.Duration) {
	root := b.TempDir()
	ipam, conf := filepath.Join(root, "ipam"), filepath.Join(root, "net.d")
	if err := os.Mkdir(conf, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "10-bench.conflist"), []byte(fmt.Sprintf(netConflist(), ipam)), 0o644); err != nil {
		b.Fatal(err)
	}
	m, err := network.NewManager(network.Config{
		StateDir: filepath.Join(root, "state"), ConfDir: conf, BinDirs: []string{"/opt/cni/bin"},
		CacheDir: filepath.Join(root, "cni-cache"), IfName: "eth0",
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := range netSetupSamples {
		id := fmt.Sprintf("net-bench-%d", i)
		start := time.Now()
		pn, err := m.Setup(ctx, network.PodRequest{ID: id, Name: id, Namespace: "e2e-net", UID: "uid-" + id, Hostname: id})
		if err != nil {
			b.Fatal(err)
		}
		setup = append(setup, time.Since(start))
		if err := pn.CloseTaps(); err != nil {
			b.Error(err)
		}
		start = time.Now()
		if err := m.Teardown(ctx, id); err != nil {
			b.Fatal(err)
		}
		teardown = append(teardown, time.Since(start))
	}
	if pods, _ := m.Pods(); len(pods) > 0 {
		b.Errorf("pod networks left after the setup measurement: %v", pods)
	}
	return setup, teardown
}

// tcpbenchRegistry builds tcpbench statically, pushes an image with it and
// busybox to a loopback registry of its own and returns that registry's
// host; the harness's registry pushes a fixed set of images.
func tcpbenchRegistry(b *testing.B) string {
	bin := filepath.Join(b.TempDir(), "tcpbench")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(goBin, "build", "-trimpath", "-o", bin, "github.com/podvisor/podvisor/e2e/tcpbench/cmd/tcpbench")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build tcpbench: %v\n%s", err, out)
	}
	tb, err := testimage.HostFile(bin, "usr/local/bin/tcpbench", 0o755)
	if err != nil {
		b.Fatal(err)
	}
	bbLayer, err := testimage.BusyboxLayer()
	if err != nil {
		b.Fatal(err)
	}
	img, err := testimage.Build(testimage.Config{Cmd: []string{"tcpbench"}}, bbLayer, testimage.Layer{tb})
	if err != nil {
		b.Fatal(err)
	}
	reg, err := testimage.StartRegistry()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { reg.Close() })
	if _, err := reg.Push("e2e/tcpbench:1", img); err != nil {
		b.Fatal(err)
	}
	return reg.Host
}

func mbpsStats(rs []tcpbench.Result) (median, lo, hi float64) {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = r.MBps()
	}
	sort.Float64s(v)
	return v[len(v)/2], v[0], v[len(v)-1]
}

// medianMax returns the lower median and the maximum of d.
func medianMax(d []time.Duration) (median, maxD time.Duration) {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)/2], s[len(s)-1]
}

func msFrac(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }
