package cloudhypervisor

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/cloudhypervisor/chtest"
)

func TestReattach(t *testing.T) {
	e := newTestEnv(t, chtest.Config{})
	first := e.launch()
	st := first.State()
	// A new daemon: only the persisted State survives.
	d, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	vm, err := d.Reattach(testCtx(t), st)
	if err != nil {
		t.Fatalf("Reattach: %v", err)
	}
	if got := vm.State(); got.PID != st.PID || got.StartTime != st.StartTime || got.StateDir != st.StateDir {
		t.Errorf("State() = %+v, want %+v", got, st)
	}
	conn, err := vm.DialAgent(testCtx(t))
	if err != nil {
		t.Fatalf("DialAgent: %v", err)
	}
	conn.Close()
	if err := vm.Stop(testCtx(t)); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	waitDone(t, vm, time.Second)
	waitDone(t, first, time.Second)
	if !processGone(st.PID) {
		t.Errorf("VMM pid %d survived Stop", st.PID)
	}
}

func TestReattachFailures(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(st *hypervisor.State)
		wantIs error
	}{
		{"other driver", func(st *hypervisor.State) { st.Driver = "qemu" }, hypervisor.ErrInvalidConfig},
		{"recycled PID", func(st *hypervisor.State) { st.StartTime++ }, hypervisor.ErrNotRunning},
		{"relative socket", func(st *hypervisor.State) { st.Extra[extraAPISocket] = "ch.sock" }, hypervisor.ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, chtest.Config{})
			vm := e.launch()
			st := vm.State()
			tt.mutate(&st)
			if _, err := e.driver.Reattach(testCtx(t), st); !errors.Is(err, tt.wantIs) {
				t.Fatalf("Reattach = %v, want %v", err, tt.wantIs)
			}
			select {
			case <-vm.Done():
				t.Error("a refused Reattach stopped the VMM")
			default:
			}
		})
	}
}

func TestReattachGoneVMM(t *testing.T) {
	e := newTestEnv(t, chtest.Config{})
	vm := e.launch()
	st := vm.State()
	if err := vm.Stop(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.driver.Reattach(testCtx(t), st); !errors.Is(err, hypervisor.ErrNotRunning) {
		t.Fatalf("Reattach = %v, want ErrNotRunning", err)
	}
}

// TestReattachShutDownVM: the VMM lives but its VM was shut down; nobody can
// use it, so Reattach stops it.
func TestReattachShutDownVM(t *testing.T) {
	e := newTestEnv(t, chtest.Config{})
	vm := e.launch()
	if err := vm.api.ShutdownVM(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	_, err := e.driver.Reattach(testCtx(t), vm.State())
	if !errors.Is(err, hypervisor.ErrNotRunning) {
		t.Fatalf("Reattach = %v, want ErrNotRunning", err)
	}
	waitDone(t, vm, 2*time.Second)
}

// TestReattachUnresponsiveAPI: a live VMM whose API does not answer is left
// alone, so that a later Reattach can still succeed.
func TestReattachUnresponsiveAPI(t *testing.T) {
	e := newTestEnv(t, chtest.Config{})
	vm := e.launch()
	st := vm.State()
	// A socket that accepts and never answers stands in for a wedged API.
	mute := filepath.Join(e.work, "mute.sock")
	l, err := net.Listen("unix", mute)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	st.Extra[extraAPISocket] = mute
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := e.driver.Reattach(ctx, st); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Reattach = %v, want DeadlineExceeded", err)
	}
	select {
	case <-vm.Done():
		t.Error("Reattach killed a VMM it could not reach")
	default:
	}
}

// TestReleaseKeepsVMForReattach releases a handle, as an exiting daemon
// does: the VMM and its sockets stay, and a re-attached handle drives it.
func TestReleaseKeepsVMForReattach(t *testing.T) {
	e := newTestEnv(t, chtest.Config{})
	first := e.launch()
	st := first.State()
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	if processGone(st.PID) {
		t.Fatal("Release stopped the VMM")
	}
	d, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	vm, err := d.Reattach(testCtx(t), st)
	if err != nil {
		t.Fatalf("Reattach after Release: %v", err)
	}
	if err := vm.Stop(testCtx(t)); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	waitDone(t, vm, time.Second)
	if !processGone(st.PID) {
		t.Errorf("VMM pid %d survived Stop", st.PID)
	}
}
