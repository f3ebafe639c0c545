package cloudhypervisor

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/podvisor/podvisor/hypervisor/vmmproc"
)

// killWait bounds the wait for a SIGKILLed VMM to be reaped; only a process
// stuck in uninterruptible sleep takes longer.
const killWait = 5 * time.Second

func killAndWait(p *vmmproc.Process) error {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill VMM pid %d: %w", p.PID, err)
	}
	select {
	case <-p.Done():
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("VMM pid %d still alive %s after SIGKILL", p.PID, killWait)
	}
}

// exitSummary describes how an exited VMM ended, with the tail of its log
// (where Cloud Hypervisor writes its errors) when there is one.
func exitSummary(p *vmmproc.Process, logPath string) string {
	s := fmt.Sprintf("VMM pid %d exited", p.PID)
	if err := p.Err(); err != nil {
		s += ": " + err.Error()
	}
	if tail := logTail(logPath); tail != "" {
		s += "; log: " + tail
	}
	return s
}

// maxLogTail is how much of the VMM log an error message carries.
const maxLogTail = 512

func logTail(path string) string {
	if path == "" {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > maxLogTail {
		_, _ = f.Seek(-maxLogTail, io.SeekEnd)
	}
	b, _ := io.ReadAll(io.LimitReader(f, maxLogTail))
	b = bytes.TrimSpace(b)
	return string(bytes.ReplaceAll(b, []byte("\n"), []byte(" | ")))
}
