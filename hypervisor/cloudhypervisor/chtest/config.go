package chtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sync"
)

// Config tunes the fake. The zero value is a healthy VMM.
type Config struct {
	// Faults maps an endpoint ("vm.boot") to the HTTP status the fake
	// answers it with, once the request passed spec validation.
	Faults map[string]int `json:"faults,omitempty"`
	// CrashOn lists endpoints at which a fake VMM process exits with status
	// 3 instead of answering (in-process servers ignore it).
	CrashOn []string `json:"crashOn,omitempty"`
	// HangOn lists endpoints the fake never answers: the request blocks
	// until the client gives up.
	HangOn []string `json:"hangOn,omitempty"`
	// VsockPorts are the guest ports that accept hybrid vsock CONNECTs;
	// empty means only DefaultVsockPort.
	VsockPorts []uint32 `json:"vsockPorts,omitempty"`
	// VsockGreeting is sent by the "guest" right behind the OK line, in the
	// same write, before echoing.
	VsockGreeting string `json:"vsockGreeting,omitempty"`
	// EventsFile, when set, receives one JSON Event per line.
	EventsFile string `json:"eventsFile,omitempty"`
}

// DefaultVsockPort is the port the fake guest listens on by default.
const DefaultVsockPort = 1024

// VsockHostPort is the number the fake puts in its "OK <n>" reply.
const VsockHostPort = 1073741824

// Event is one thing the fake saw, for tests to assert on.
type Event struct {
	Kind string `json:"kind"` // "start", "request" or "vsock"

	// start
	PID  int      `json:"pid,omitempty"`
	Args []string `json:"args,omitempty"`

	// request
	Method    string          `json:"method,omitempty"`
	Endpoint  string          `json:"endpoint,omitempty"` // e.g. "vm.add-net"
	Status    int             `json:"status,omitempty"`
	FDs       int             `json:"fds,omitempty"`
	FDKinds   []string        `json:"fdKinds,omitempty"` // "fifo", "chr", "reg", "sock"…
	NumQueues int             `json:"numQueues,omitempty"`
	Body      json.RawMessage `json:"body,omitempty"`
	Error     string          `json:"error,omitempty"`

	// vsock
	Port uint32 `json:"port,omitempty"`
}

// ReadEvents reads the events a fake appended to path.
func ReadEvents(path string) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var evs []Event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		evs = append(evs, ev)
	}
	return evs, sc.Err()
}

// recorder appends events to a file; each event is one write, so that lines
// from concurrent handlers do not interleave.
type recorder struct {
	mu   sync.Mutex
	path string
}

func (r *recorder) record(ev Event) {
	if r == nil || r.path == "" {
		return
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.Write(append(b, '\n'))
}
