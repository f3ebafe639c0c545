package chtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// envConfig names the fake's Config file; its presence turns a test binary
// into a fake cloud-hypervisor.
const envConfig = "PODVISOR_FAKE_CH_CONFIG"

// maxLifetime ends a fake VMM that its test forgot (a test binary that died
// before Stop): it never outlives a test run by much.
const maxLifetime = 2 * time.Minute

// MainIfFakeVMM runs the fake VMM process and exits when this binary was
// started through a launcher script from WriteLauncher; otherwise it returns
// at once. Call it first thing in TestMain.
func MainIfFakeVMM() {
	path, ok := os.LookupEnv(envConfig)
	if !ok {
		return
	}
	if err := runFakeVMM(path, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fake cloud-hypervisor:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// WriteLauncher writes an executable "cloud-hypervisor" into dir that runs
// the current test binary as a fake VMM with cfg, and returns its path: give
// it to the driver as its binary. The VMM helper clears the environment, so
// the script sets the switch itself.
func WriteLauncher(dir string, cfg Config) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	cfgPath := filepath.Join(dir, "fake-ch-config.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return "", err
	}
	script := fmt.Sprintf("#!/bin/sh\nexport %s=%s\nexec %s \"$@\"\n", envConfig, shellQuote(cfgPath), shellQuote(exe))
	path := filepath.Join(dir, "cloud-hypervisor")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		return "", err
	}
	return path, nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// fakeArgs are the cloud-hypervisor flags the fake understands.
type fakeArgs struct {
	apiSocket    string
	seccomp      string
	eventMonitor string
}

func parseFakeArgs(args []string) (fakeArgs, error) {
	var a fakeArgs
	for i := 0; i < len(args); i++ {
		flag := args[i]
		if i+1 >= len(args) {
			return a, fmt.Errorf("flag %s without value", flag)
		}
		i++
		val := args[i]
		switch flag {
		case "--api-socket":
			p, ok := strings.CutPrefix(val, "path=")
			if !ok {
				return a, fmt.Errorf("--api-socket %q: only path= is faked", val)
			}
			a.apiSocket = p
		case "--seccomp":
			if val != "true" && val != "false" && val != "log" {
				return a, fmt.Errorf("--seccomp %q", val)
			}
			a.seccomp = val
		case "--event-monitor":
			p, ok := strings.CutPrefix(val, "path=")
			if !ok {
				return a, fmt.Errorf("--event-monitor %q: only path= is faked", val)
			}
			a.eventMonitor = p
		default:
			return a, fmt.Errorf("unknown flag %s", flag)
		}
	}
	if a.apiSocket == "" {
		return a, errors.New("no --api-socket")
	}
	return a, nil
}

func runFakeVMM(cfgPath string, args []string) error {
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return err
	}
	a, err := parseFakeArgs(args)
	if err != nil {
		return err
	}
	s, err := NewServer(cfg)
	if err != nil {
		return err
	}
	s.onCrash = func() { os.Exit(3) }
	s.onVMMShutdown = func() {
		// Give the flushed reply a moment on the wire, as a real exit does.
		time.AfterFunc(10*time.Millisecond, func() { os.Exit(0) })
	}
	time.AfterFunc(maxLifetime, func() { os.Exit(4) })

	// Like the real VMM: lock <socket>.lock, then replace a stale socket.
	lock, err := os.OpenFile(a.apiSocket+".lock", os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("API socket %s in use: %w", a.apiSocket, err)
	}
	_ = os.Remove(a.apiSocket)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: a.apiSocket, Net: "unix"})
	if err != nil {
		return err
	}
	l.SetUnlinkOnClose(false)
	if a.eventMonitor != "" {
		const ev = "{\n  \"timestamp\": {\"secs\": 0, \"nanos\": 0},\n  \"source\": \"vmm\",\n  \"event\": \"starting\",\n  \"properties\": null\n}\n\n"
		if err := os.WriteFile(a.eventMonitor, []byte(ev), 0o600); err != nil {
			return err
		}
	}
	s.rec.record(Event{Kind: "start", PID: os.Getpid(), Args: args})
	return s.Serve(l)
}
