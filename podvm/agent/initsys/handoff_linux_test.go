package initsys

import (
	"errors"
	"maps"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// isOpen reports whether fd is an open descriptor.
func isOpen(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return !errors.Is(err, unix.EBADF)
}

func TestHandoffRoundTrip(t *testing.T) {
	secrets := map[string][]byte{
		"agent.key": []byte("-----BEGIN PRIVATE KEY-----\n\x00\xff\n"),
		"agent.crt": []byte("cert"),
		"empty":     {},
	}
	fd, err := newHandoff(secrets)
	if err != nil {
		t.Fatal(err)
	}
	if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("hand-off fd flags %#x, %v: want close-on-exec until Reexec", flags, err)
	}
	if _, err := unix.Write(fd, []byte("more")); !errors.Is(err, unix.EPERM) {
		t.Errorf("write to the sealed hand-off: %v, want EPERM", err)
	}
	t.Setenv(HandoffEnv, strconv.Itoa(fd))

	got, ok, err := TakeHandoff()
	if err != nil || !ok {
		t.Fatalf("TakeHandoff: %v, %v", ok, err)
	}
	if !maps.EqualFunc(got, secrets, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Errorf("handed over %q, want %q", got, secrets)
	}
	if isOpen(fd) {
		t.Error("hand-off fd still open")
	}
	if v, set := os.LookupEnv(HandoffEnv); set {
		t.Errorf("%s still set to %q", HandoffEnv, v)
	}
}

func TestTakeHandoffWithoutOne(t *testing.T) {
	os.Unsetenv(HandoffEnv)
	got, ok, err := TakeHandoff()
	if got != nil || ok || err != nil {
		t.Fatalf("TakeHandoff with nothing handed over: %v, %v, %v", got, ok, err)
	}
}

// TestTakeHandoffRefuses checks that only a sealed memfd is read, and that
// the descriptor is closed even then.
func TestTakeHandoffRefuses(t *testing.T) {
	unsealed := func(t *testing.T) int {
		fd, err := unix.MemfdCreate("t", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Write(fd, []byte(`{"agent.key":"a2V5"}`)); err != nil {
			t.Fatal(err)
		}
		return fd
	}
	for _, tc := range []struct {
		name string
		fd   func(t *testing.T) int
	}{
		{"pipe", func(t *testing.T) int {
			var p [2]int
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			unix.Close(p[1])
			return p[0]
		}},
		{"regular file", func(t *testing.T) int {
			f, err := os.CreateTemp(t.TempDir(), "handoff")
			if err != nil {
				t.Fatal(err)
			}
			fd, err := unix.Dup(int(f.Fd()))
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			return fd
		}},
		{"unsealed memfd", unsealed},
		{"memfd sealed against growth only", func(t *testing.T) int {
			fd := unsealed(t)
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_GROW); err != nil {
				t.Fatal(err)
			}
			return fd
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fd := tc.fd(t)
			t.Setenv(HandoffEnv, strconv.Itoa(fd))
			got, ok, err := TakeHandoff()
			if err == nil || !ok || got != nil {
				t.Errorf("TakeHandoff: %v, %v, %v; want an error", got, ok, err)
			}
			if isOpen(fd) {
				t.Error("fd left open")
				unix.Close(fd)
			}
		})
	}
	for _, v := range []string{"", "x", "-1", "0", "2"} {
		t.Setenv(HandoffEnv, v)
		if _, ok, err := TakeHandoff(); err == nil || !ok {
			t.Errorf("%s=%q: %v, %v; want an error", HandoffEnv, v, ok, err)
		}
	}
}
