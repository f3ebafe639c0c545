package cloudhypervisor

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/cloudhypervisor/chtest"
)

// TestMain lets the test binary double as a fake cloud-hypervisor: the
// driver starts it through a launcher script written by chtest.
func TestMain(m *testing.M) {
	chtest.MainIfFakeVMM()
	os.Exit(m.Run())
}

// testEnv is one VM's worth of fixtures: a driver whose binary is the fake
// VMM, a valid Config and the fake's event log.
type testEnv struct {
	t      *testing.T
	driver *Driver
	cfg    hypervisor.Config
	events string
	work   string // fixtures outside StateDir
}

func newTestEnv(t *testing.T, fake chtest.Config) *testEnv {
	t.Helper()
	// Short paths: unix socket names are limited to 107 bytes, and
	// t.TempDir() embeds the (long) test name.
	root, err := os.MkdirTemp("", "chvm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	work := filepath.Join(root, "work")
	stateDir := filepath.Join(root, "state")
	for _, d := range []string{work, stateDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	fake.EventsFile = filepath.Join(work, "events")
	bin, err := chtest.WriteLauncher(work, fake)
	if err != nil {
		t.Fatal(err)
	}
	kernel := writeFile(t, filepath.Join(work, "vmlinux"))
	initrd := writeFile(t, filepath.Join(work, "initrd"))
	fsSock := writeFile(t, filepath.Join(work, "virtiofs.sock"))

	d, err := New(Options{Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{
		t:      t,
		driver: d,
		events: fake.EventsFile,
		work:   work,
		cfg: hypervisor.Config{
			ID:         "pod1",
			StateDir:   stateDir,
			Kernel:     kernel,
			Initramfs:  initrd,
			KernelArgs: []string{"console=ttyS0", "quiet"},
			VCPUs:      2,
			MemoryMiB:  256,
			SharedFS:   &hypervisor.SharedFS{Tag: "pod", Socket: fsSock},
			NICs:       []hypervisor.NIC{testNIC(t, "eth0", 0x02)},
			ConsoleLog: filepath.Join(stateDir, "console.log"),
			KVM:        true,
		},
	}
}

func writeFile(t *testing.T, path string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// testNIC is backed by a pipe: the fake only checks that an open fd arrives.
func testNIC(t *testing.T, id string, last byte) hypervisor.NIC {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return hypervisor.NIC{ID: id, MAC: net.HardwareAddr{0x02, 0, 0, 0, 0, last}, MTU: 1500, Tap: w}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// launch launches e.cfg and makes sure the VMM is gone after the test.
func (e *testEnv) launch() *VM {
	e.t.Helper()
	vm, err := e.driver.Launch(testCtx(e.t), e.cfg)
	if err != nil {
		e.t.Fatalf("Launch: %v", err)
	}
	v := vm.(*VM)
	e.t.Cleanup(func() { _ = v.Stop(context.Background()) })
	return v
}

func (e *testEnv) readEvents() []chtest.Event {
	e.t.Helper()
	evs, err := chtest.ReadEvents(e.events)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		e.t.Fatal(err)
	}
	return evs
}

// requests are the API calls the fake saw, pings left out (their number
// depends on timing).
func (e *testEnv) requests() []chtest.Event {
	var out []chtest.Event
	for _, ev := range e.readEvents() {
		if ev.Kind == "request" && ev.Endpoint != "vmm.ping" {
			out = append(out, ev)
		}
	}
	return out
}

func (e *testEnv) request(endpoint string) chtest.Event {
	e.t.Helper()
	for _, ev := range e.requests() {
		if ev.Endpoint == endpoint {
			return ev
		}
	}
	e.t.Fatalf("fake saw no %s request", endpoint)
	return chtest.Event{}
}

// fakePID is the PID the fake VMM reported when it started, 0 if it never did.
func (e *testEnv) fakePID() int {
	for _, ev := range e.readEvents() {
		if ev.Kind == "start" {
			return ev.PID
		}
	}
	return 0
}

// stateFiles lists StateDir.
func (e *testEnv) stateFiles() []string {
	e.t.Helper()
	ents, err := os.ReadDir(e.cfg.StateDir)
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, de := range ents {
		names = append(names, de.Name())
	}
	slices.Sort(names)
	return names
}

func processGone(pid int) bool {
	err := syscall.Kill(pid, 0)
	return errors.Is(err, syscall.ESRCH)
}

func waitDone(t *testing.T, vm hypervisor.VM, within time.Duration) {
	t.Helper()
	select {
	case <-vm.Done():
	case <-time.After(within):
		t.Fatalf("Done not closed within %s", within)
	}
}

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	t.Helper()
	return context.WithTimeout(context.Background(), d)
}

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

func isInvalid(err error) bool { return errors.Is(err, hypervisor.ErrInvalidConfig) }
