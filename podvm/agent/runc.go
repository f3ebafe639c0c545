package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/podvisor/podvisor/podvm/agent/reaper"
)

// Bounds on runc invocations. runc's own output is small; more is cut.
const (
	runcTimeout   = 60 * time.Second
	maxRuncOutput = 64 << 10
	maxPIDFile    = 32
)

// runcEnv is runc's whole environment: the agent's own must not leak into
// it, and runc needs nothing else.
var runcEnv = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}

// runcArgv is argv for a runc command with the agent's global options.
func (s *Service) runcArgv(args ...string) []string {
	cc := s.cfg.Containers
	return append([]string{cc.Runc, "--root", cc.RuncRoot}, args...)
}

// startRunc starts runc with files as its stdin, stdout and stderr, through
// the reaper.
func (s *Service) startRunc(argv []string, files []uintptr) (int, <-chan reaper.Exit, error) {
	attr := &syscall.ProcAttr{Dir: "/", Env: runcEnv, Files: files}
	return s.cfg.Reaper.Start(func() (int, error) {
		return syscall.ForkExec(argv[0], argv, attr)
	})
}

// waitRunc waits for a runc process to exit, killing it if ctx ends first
// (runc is then still waited for, so nothing is left behind).
func (s *Service) waitRunc(ctx context.Context, pid int, exitCh <-chan reaper.Exit) (reaper.Exit, error) {
	ctx, cancel := context.WithTimeout(ctx, runcTimeout)
	defer cancel()
	select {
	case e := <-exitCh:
		return e, nil
	case <-ctx.Done():
		_ = s.cfg.Reaper.Kill(pid, syscall.SIGKILL)
		<-exitCh
		return reaper.Exit{}, fmt.Errorf("runc: %w", ctx.Err())
	}
}

// runRunc runs a runc command to completion with in as its stdin and
// returns its standard output. A failure carries runc's error message.
func (s *Service) runRunc(ctx context.Context, in []byte, args ...string) ([]byte, error) {
	devNull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer devNull.Close()
	stdin := devNull
	if in != nil {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		defer r.Close()
		go func() {
			_, _ = w.Write(in) // EPIPE if runc does not read it: its error says why
			w.Close()
		}()
		stdin = r
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return nil, err
	}
	defer errR.Close()

	argv := s.runcArgv(args...)
	pid, exitCh, err := s.startRunc(argv, []uintptr{stdin.Fd(), outW.Fd(), errW.Fd()})
	outW.Close()
	errW.Close()
	if err != nil {
		return nil, fmt.Errorf("start runc %s: %w", args[0], err)
	}
	outc, errc := make(chan []byte, 1), make(chan []byte, 1)
	go func() { outc <- readBounded(outR) }()
	go func() { errc <- readBounded(errR) }()
	exit, err := s.waitRunc(ctx, pid, exitCh)
	out, errOut := <-outc, <-errc
	if err != nil {
		return nil, fmt.Errorf("runc %s: %w", args[0], err)
	}
	if exit.ExitCode() != 0 {
		return out, runcError(args[0], exit, string(errOut))
	}
	return out, nil
}

// readBounded reads r to its end, keeping the first maxRuncOutput bytes.
func readBounded(r io.Reader) []byte {
	b, _ := io.ReadAll(io.LimitReader(r, maxRuncOutput))
	_, _ = io.Copy(io.Discard, r)
	return b
}

// runcError turns a failed runc command into an error of the right kind.
func runcError(cmd string, exit reaper.Exit, msg string) error {
	msg = strings.TrimSpace(msg)
	msg = truncate(msg, 4096)
	var kind error
	switch {
	case strings.Contains(msg, "does not exist"):
		kind = ErrNotFound
	case strings.Contains(msg, "cannot start a container that has stopped"),
		strings.Contains(msg, "is not running"),
		strings.Contains(msg, "container is not created"),
		strings.Contains(msg, "not in created state"),
		strings.Contains(msg, "is stopped"):
		kind = ErrFailedPrecondition
	default:
		return fmt.Errorf("runc %s: exit code %d: %s", cmd, exit.ExitCode(), msg)
	}
	return fmt.Errorf("runc %s: %s: %w", cmd, msg, kind)
}

// runcLogError returns the last error runc wrote to its JSON log file (the
// --log of create and exec, whose stderr belongs to the container).
func runcLogError(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var last string
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var entry struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &entry) == nil && (entry.Level == "error" || entry.Level == "fatal") {
			last = entry.Msg
		}
	}
	return truncate(last, 4096)
}

// readPIDFile reads the pid runc wrote with --pid-file.
func readPIDFile(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("runc pid file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPIDFile))
	if err != nil {
		return 0, fmt.Errorf("runc pid file: %w", err)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("runc pid file %s: %q is not a pid", path, truncate(string(b), 32))
	}
	return pid, nil
}
