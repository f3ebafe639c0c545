package names

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podvisor/podvisor/cri/errdefs"
)

func TestReserveRelease(t *testing.T) {
	r := New()
	if err := r.Reserve("a", "k1"); err != nil {
		t.Fatal(err)
	}
	if err := r.Reserve("a", "k1"); err != nil {
		t.Fatalf("same key: %v", err)
	}
	if err := r.Reserve("a", "k2"); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("other key: %v, want ErrAlreadyExists", err)
	}
	r.Release("a", "k2") // not the holder: no effect
	if k, _ := r.Holder("a"); k != "k1" {
		t.Fatalf("holder %q", k)
	}
	r.Release("a", "k1")
	if err := r.Reserve("a", "k2"); err != nil {
		t.Fatal(err)
	}
	if err := r.Reserve("", "k"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("empty name: %v", err)
	}
}

func TestWait(t *testing.T) {
	for _, commit := range []bool{true, false} {
		t.Run(fmt.Sprint("commit=", commit), func(t *testing.T) {
			r := New()
			if err := r.Reserve("pod", "id1"); err != nil {
				t.Fatal(err)
			}
			go func() {
				time.Sleep(10 * time.Millisecond)
				if commit {
					r.Commit("pod", "id1")
				} else {
					r.Release("pod", "id1")
				}
			}()
			key, committed, err := r.Wait(context.Background(), "pod")
			if err != nil || key != "id1" || committed != commit {
				t.Fatalf("Wait = %q %v %v", key, committed, err)
			}
		})
	}
	r := New()
	if k, c, err := r.Wait(context.Background(), "free"); k != "" || c || err != nil {
		t.Fatalf("free name: %q %v %v", k, c, err)
	}
	_ = r.Reserve("x", "k")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if _, _, err := r.Wait(ctx, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on timeout: %v", err)
	}
}

func TestReserveRace(t *testing.T) {
	r := New()
	var won atomic.Int32
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r.Reserve("n", fmt.Sprint(i)) == nil {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d reservations won, want 1", won.Load())
	}
}
