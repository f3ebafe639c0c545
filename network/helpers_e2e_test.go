//go:build e2e

package network

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/podvisor/podvisor/e2e/hostnet"
)

// These tests need root and the reference plugins (make cni-plugins). They
// use their own bridge and subnets, a private host-local data dir and
// state dir, and remove the bridge and the shared iptables chains the
// plugins create when those did not exist before the run.

const (
	testBridge  = "pvtest0"
	testNetwork = "pvtest"
	testSubnet4 = "10.123.0.0/24"
	testGW4     = "10.123.0.1"
	testSubnet6 = "fd12:3456:789a::/64"
)

func testBinDir() string {
	if d := os.Getenv("PODVISOR_CNI_BIN_DIR"); d != "" {
		return d
	}
	return "/opt/cni/bin"
}

// iptablesCmds are the tools whose rules the tests inspect.
var iptablesCmds = []string{"iptables", "ip6tables"}

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("network e2e tests need root; skipping")
		os.Exit(0)
	}
	before := hostnet.Take(testBridge)
	code := m.Run()
	before.Restore(testBridge)
	os.Exit(code)
}

type testEnv struct {
	cfg      Config
	ipamDir  string
	confDir  string
	extraBin string
}

// newTestEnv writes the test conflist (plus extra plugins) into a fresh
// conf dir; extraBin is a temp bin dir searched before the real one.
func newTestEnv(t testing.TB, extraPlugins ...string) *testEnv {
	t.Helper()
	if _, err := os.Stat(filepath.Join(testBinDir(), "bridge")); err != nil {
		t.Skipf("reference CNI plugins not installed in %s (make cni-plugins): %v", testBinDir(), err)
	}
	root := t.TempDir()
	env := &testEnv{ipamDir: filepath.Join(root, "ipam"), confDir: filepath.Join(root, "conf"), extraBin: filepath.Join(root, "bin")}
	for _, d := range []string{env.confDir, env.extraBin} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	plugins := []string{
		fmt.Sprintf(`{"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":true,"hairpinMode":true,
		 "ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":%q}],[{"subnet":%q}]],
		 "routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]}}`, testBridge, env.ipamDir, testSubnet4, testSubnet6),
		`{"type":"portmap","capabilities":{"portMappings":true},"snat":true}`,
		`{"type":"firewall"}`,
	}
	plugins = append(plugins, extraPlugins...)
	list := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[%s]}`, testNetwork, strings.Join(plugins, ","))
	if err := os.WriteFile(filepath.Join(env.confDir, "10-test.conflist"), []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	env.cfg = Config{
		StateDir: filepath.Join(root, "state"),
		ConfDir:  env.confDir,
		BinDirs:  []string{env.extraBin, testBinDir()},
		CacheDir: filepath.Join(root, "state", "cni-cache"),
		IfName:   "eth0",
	}
	return env
}

func (e *testEnv) manager(t testing.TB) *Manager {
	t.Helper()
	m, err := NewManager(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// setup runs Setup and registers a Teardown and tap close for cleanup.
func (e *testEnv) setup(t testing.TB, m *Manager, req PodRequest) *PodNetwork {
	t.Helper()
	pn, err := m.Setup(context.Background(), req)
	if err != nil {
		t.Fatalf("Setup(%s): %v", req.ID, err)
	}
	t.Cleanup(func() {
		_ = pn.CloseTaps()
		if err := m.Teardown(context.Background(), req.ID); err != nil {
			t.Errorf("cleanup Teardown(%s): %v", req.ID, err)
		}
	})
	return pn
}

func podRequest(id string) PodRequest {
	return PodRequest{ID: id, Name: "pod-" + id, Namespace: "e2e", UID: "uid-" + id, Hostname: id}
}

// assertNoTrace checks that nothing of pod id is left on the host.
func (e *testEnv) assertNoTrace(t testing.TB, m *Manager, id string, ips ...string) {
	t.Helper()
	if _, err := os.Lstat(m.NetNSPath(id)); !os.IsNotExist(err) {
		t.Errorf("netns file of %s still there: %v", id, err)
	}
	if _, err := m.records.get(id); !os.IsNotExist(err) {
		t.Errorf("record of %s still there: %v", id, err)
	}
	if br, err := netlink.LinkByName(testBridge); err == nil {
		links, _ := netlink.LinkList()
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				t.Errorf("veth %s still attached to %s", l.Attrs().Name, testBridge)
			}
		}
	}
	if cached, _ := filepath.Glob(filepath.Join(e.cfg.CacheDir, "results", "*"+id+"*")); len(cached) > 0 {
		t.Errorf("libcni cache still holds %v", cached)
	}
	ipam := filepath.Join(e.ipamDir, testNetwork)
	entries, _ := os.ReadDir(ipam)
	for _, ent := range entries {
		data, _ := os.ReadFile(filepath.Join(ipam, ent.Name()))
		if bytes.Contains(data, []byte(id)) {
			t.Errorf("host-local reservation %s still held by %s", ent.Name(), id)
		}
	}
	for _, ipt := range iptablesCmds {
		out, err := exec.Command(ipt + "-save").Output()
		if err != nil {
			t.Fatalf("%s-save: %v", ipt, err)
		}
		for _, needle := range append([]string{id}, ips...) {
			if bytes.Contains(out, []byte(needle)) {
				t.Errorf("%s rules still mention %s:\n%s", ipt, needle, out)
			}
		}
	}
}
