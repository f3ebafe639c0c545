package cloudhypervisor

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/cloudhypervisor/chtest"
)

// TestLaunchFailureLeavesNothing fails each boot step in turn and checks that
// no VMM process and no file the driver created survive.
func TestLaunchFailureLeavesNothing(t *testing.T) {
	tests := []struct {
		name    string
		fake    chtest.Config
		timeout time.Duration
		wantIn  string // in the error
		wantIs  error
	}{
		{name: "ping fails", fake: chtest.Config{Faults: map[string]int{"vmm.ping": 500}}, wantIn: "wait for API"},
		{name: "create fails", fake: chtest.Config{Faults: map[string]int{"vm.create": 500}}, wantIn: "create VM"},
		{name: "create rejected", fake: chtest.Config{Faults: map[string]int{"vm.create": 400}}, wantIn: "create VM", wantIs: hypervisor.ErrInvalidConfig},
		{name: "add-net rejected", fake: chtest.Config{Faults: map[string]int{"vm.add-net": 400}}, wantIn: `NIC "eth0"`, wantIs: hypervisor.ErrInvalidConfig},
		{name: "boot fails", fake: chtest.Config{Faults: map[string]int{"vm.boot": 500}}, wantIn: "boot VM"},
		{name: "info fails", fake: chtest.Config{Faults: map[string]int{"vm.info": 500}}, wantIn: "wait for running"},
		{name: "VMM dies in boot", fake: chtest.Config{CrashOn: []string{"vm.boot"}}, wantIn: "exited"},
		{name: "boot hangs past ctx", fake: chtest.Config{HangOn: []string{"vm.boot"}}, timeout: 500 * time.Millisecond, wantIs: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, tt.fake)
			ctx := testCtx(t)
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			vm, err := e.driver.Launch(ctx, e.cfg)
			if err == nil {
				vm.Stop(context.Background())
				t.Fatal("Launch succeeded")
			}
			t.Logf("Launch: %v", err)
			if tt.wantIn != "" && !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("error does not mention %q", tt.wantIn)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error is not %v", tt.wantIs)
			}
			pid := e.fakePID()
			if pid == 0 {
				t.Fatal("the fake VMM never started")
			}
			if !processGone(pid) {
				t.Errorf("VMM pid %d survived the failed Launch", pid)
			}
			if files := e.stateFiles(); len(files) != 0 {
				t.Errorf("StateDir after failed Launch holds %q", files)
			}
		})
	}
}

// TestLaunchRejectsBeforeSideEffects checks configs that must fail validation
// without a process started or a file touched.
func TestLaunchRejectsBeforeSideEffects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(e *testEnv)
		wantIs error
	}{
		{"no KVM", func(e *testEnv) { e.cfg.KVM = false }, hypervisor.ErrUnsupported},
		{"no ID", func(e *testEnv) { e.cfg.ID = "" }, hypervisor.ErrInvalidConfig},
		{"relative kernel", func(e *testEnv) { e.cfg.Kernel = "vmlinux" }, hypervisor.ErrInvalidConfig},
		{"missing kernel", func(e *testEnv) { e.cfg.Kernel = filepath.Join(e.work, "nope") }, hypervisor.ErrInvalidConfig},
		{"missing StateDir", func(e *testEnv) { e.cfg.StateDir = filepath.Join(e.work, "nope") }, hypervisor.ErrInvalidConfig},
		{"comma in StateDir", func(e *testEnv) { e.cfg.StateDir += ",x" }, hypervisor.ErrInvalidConfig},
		{"StateDir too long", func(e *testEnv) { e.cfg.StateDir = "/" + strings.Repeat("d", 100) }, hypervisor.ErrInvalidConfig},
		{"multicast MAC", func(e *testEnv) { e.cfg.NICs[0].MAC[0] = 0x01 }, hypervisor.ErrInvalidConfig},
		{"duplicate NIC", func(e *testEnv) { e.cfg.NICs = append(e.cfg.NICs, e.cfg.NICs[0]) }, hypervisor.ErrInvalidConfig},
		{"reserved NIC ID", func(e *testEnv) { e.cfg.NICs[0].ID = "_net0" }, hypervisor.ErrInvalidConfig},
		{"console log is a symlink", func(e *testEnv) {
			if err := os.Symlink("/etc/passwd", filepath.Join(e.work, "console")); err != nil {
				e.t.Fatal(err)
			}
			e.cfg.ConsoleLog = filepath.Join(e.work, "console")
		}, hypervisor.ErrInvalidConfig},
		{"binary missing", func(e *testEnv) {
			d, err := New(Options{Binary: filepath.Join(e.work, "no-such-vmm")})
			if err != nil {
				e.t.Fatal(err)
			}
			e.driver = d
		}, hypervisor.ErrUnsupported},
		{"a VMM already serves StateDir", func(e *testEnv) {
			l, err := net.Listen("unix", filepath.Join(e.cfg.StateDir, apiSocketName))
			if err != nil {
				e.t.Fatal(err)
			}
			e.t.Cleanup(func() { l.Close() })
		}, hypervisor.ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, chtest.Config{})
			tt.mutate(e)
			before := e.stateFilesIfAny()
			_, err := e.driver.Launch(testCtx(t), e.cfg)
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("Launch = %v, want %v", err, tt.wantIs)
			}
			if pid := e.fakePID(); pid != 0 {
				t.Errorf("a VMM (pid %d) was started", pid)
			}
			if after := e.stateFilesIfAny(); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Errorf("StateDir changed from %q to %q", before, after)
			}
		})
	}
}

func (e *testEnv) stateFilesIfAny() []string {
	if _, err := os.Stat(e.cfg.StateDir); err != nil {
		return nil
	}
	return e.stateFiles()
}

func TestLaunchKeepsCallersConsoleLog(t *testing.T) {
	e := newTestEnv(t, chtest.Config{Faults: map[string]int{"vm.boot": 500}})
	e.cfg.ConsoleLog = writeFile(t, filepath.Join(e.work, "console.log"))
	if _, err := e.driver.Launch(testCtx(t), e.cfg); err == nil {
		t.Fatal("Launch succeeded")
	}
	if _, err := os.Stat(e.cfg.ConsoleLog); err != nil {
		t.Errorf("the caller's console log was removed: %v", err)
	}
}
