package chtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/podvisor/podvisor/hypervisor/cloudhypervisor/chapi"
)

// vmState is the fake VMM's view of its VM. Like the real one, it keeps the
// config after vm.shutdown (vm.info then says Created) and can boot again.
type vmState int

const (
	stateNone vmState = iota
	stateCreated
	stateRunning
)

// Server is a fake Cloud Hypervisor API.
type Server struct {
	cfg  Config
	spec *specChecker
	rec  *recorder

	// onCrash and onVMMShutdown end a fake VMM process; nil in-process.
	onCrash       func()
	onVMMShutdown func()

	mu       sync.Mutex
	state    vmState
	vm       chapi.VmConfig
	taps     map[string][]*os.File // NIC ID → fds held while the VM lives
	vsock    *vsockServer
	nextSlot int
	http     *http.Server
}

// NewServer returns a fake VMM with no VM.
func NewServer(cfg Config) (*Server, error) {
	spec, err := newSpecChecker()
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, spec: spec, rec: &recorder{path: cfg.EventsFile}, taps: map[string][]*os.File{}}, nil
}

// Serve answers API requests on l until Close.
func (s *Server) Serve(l *net.UnixListener) error {
	s.mu.Lock()
	s.http = &http.Server{
		Handler:     s,
		ConnContext: withConn,
	}
	srv := s.http
	s.mu.Unlock()
	err := srv.Serve(fdListener{l})
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops serving and releases every fd the fake holds.
func (s *Server) Close() error {
	s.mu.Lock()
	srv := s.http
	s.stopVMLocked()
	s.mu.Unlock()
	if srv != nil {
		return srv.Close()
	}
	return nil
}

// reply is an HTTP answer: a status and an optional JSON body.
type reply struct {
	status int
	body   any
}

// chError mimics Cloud Hypervisor's error body, the chain of messages.
func chError(status int, msgs ...string) reply { return reply{status, msgs} }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	files, trunc := requestFDs(r.Context())
	endpoint := strings.TrimPrefix(r.URL.Path, "/api/v1/")
	ev := Event{Kind: "request", Method: r.Method, Endpoint: endpoint, FDs: len(files)}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var rep reply
	switch {
	case err != nil:
		rep = chError(http.StatusBadRequest, err.Error())
	case trunc:
		rep = chError(http.StatusBadRequest, "too many fds")
	default:
		ev.Body = jsonOrNil(body)
		rep, files = s.handle(r, endpoint, body, files, &ev)
	}
	closeAll(files) // those the handler did not keep
	ev.Status = rep.status
	if rep.status >= 300 && ev.Error == "" {
		ev.Error = fmt.Sprint(rep.body)
	}
	s.rec.record(ev)

	w.Header().Set("Server", "Cloud Hypervisor API")
	if rep.body != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.status)
		_ = json.NewEncoder(w).Encode(rep.body)
	} else {
		w.WriteHeader(rep.status)
	}
	if endpoint == "vmm.shutdown" && rep.status == http.StatusOK && s.onVMMShutdown != nil {
		_ = http.NewResponseController(w).Flush()
		s.onVMMShutdown()
	}
}

// handle validates and dispatches one request. It returns the files it did
// not take ownership of.
func (s *Server) handle(r *http.Request, endpoint string, body []byte, files []*os.File, ev *Event) (reply, []*os.File) {
	hasBody, err := s.spec.check(r.Context(), r, body)
	switch {
	case errors.Is(err, errNoRoute):
		return chError(http.StatusNotFound, "Not Found"), files
	case errors.Is(err, errMethodNotAllowed):
		return chError(http.StatusBadRequest, "Bad Request"), files
	case err != nil:
		ev.Error = "spec: " + err.Error()
		return chError(http.StatusBadRequest, "request does not match the API spec", err.Error()), files
	case !hasBody && len(body) > 0:
		// The real VMM rejects a body on body-less actions.
		return chError(http.StatusBadRequest, "Bad Request"), files
	}
	if slices.Contains(s.cfg.CrashOn, endpoint) && s.onCrash != nil {
		s.onCrash()
	}
	if slices.Contains(s.cfg.HangOn, endpoint) {
		<-r.Context().Done()
		return chError(http.StatusServiceUnavailable, "client went away"), files
	}
	if status, ok := s.cfg.Faults[endpoint]; ok {
		return chError(status, "injected fault", endpoint), files
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	switch endpoint {
	case "vmm.ping":
		return reply{http.StatusOK, chapi.VmmPingResponse{Version: "v53.0-fake", Pid: ptr(int64(os.Getpid()))}}, files
	case "vmm.shutdown":
		s.stopVMLocked()
		// The real VMM answers 200, not the 204 its spec promises.
		return reply{status: http.StatusOK}, files
	case "vm.create":
		return s.create(body), files // the real VMM drops fds sent with vm.create
	case "vm.boot":
		return s.boot(), files
	case "vm.info":
		return s.info(), files
	case "vm.shutdown":
		return s.shutdown(), files
	case "vm.add-net":
		return s.addNet(body, files, ev)
	case "vm.add-disk":
		return s.addDisk(body), files
	case "vm.remove-device":
		return s.removeDevice(body), files
	}
	return chError(http.StatusInternalServerError, "fake VMM does not implement "+endpoint), files
}
