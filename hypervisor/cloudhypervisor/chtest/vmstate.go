package chtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"

	"github.com/podvisor/podvisor/hypervisor/cloudhypervisor/chapi"
)

// decodeStrict decodes a body already validated against the spec, also
// rejecting fields the spec does not know: the real VMM silently ignores
// them, which is how typos go unnoticed.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func (s *Server) create(body []byte) reply {
	var cfg chapi.VmConfig
	if err := decodeStrict(body, &cfg); err != nil {
		return chError(http.StatusBadRequest, "Failed to deserialize JSON", err.Error())
	}
	if s.state != stateNone {
		return chError(http.StatusInternalServerError, "Error from API", "VM is already created")
	}
	if cfg.Net != nil && len(*cfg.Net) > 0 {
		return chError(http.StatusInternalServerError, "fake VMM: nets must come through vm.add-net with fds")
	}
	s.vm, s.state = cfg, stateCreated
	return reply{status: http.StatusNoContent}
}

func (s *Server) boot() reply {
	switch s.state {
	case stateNone:
		return chError(http.StatusNotFound, "Error from API", "VM is not created")
	case stateRunning:
		return chError(http.StatusInternalServerError, "Error from API", "VM is already running")
	}
	if v := s.vm.Vsock; v != nil {
		vs, err := listenVsock(v.Socket, s.cfg, s.rec)
		if err != nil {
			return chError(http.StatusInternalServerError, "Error from API", "vsock: "+err.Error())
		}
		s.vsock = vs
	}
	s.state = stateRunning
	return reply{status: http.StatusNoContent}
}

func (s *Server) info() reply {
	st := chapi.VmStateCreated
	switch s.state {
	case stateNone:
		return chError(http.StatusNotFound, "Error from API", "VM is not created")
	case stateRunning:
		st = chapi.VmStateRunning
	}
	return reply{http.StatusOK, chapi.VmInfo{Config: s.vm, State: st}}
}

func (s *Server) shutdown() reply {
	if s.state != stateRunning {
		return chError(http.StatusInternalServerError, "Error from API", "VM is not running")
	}
	s.stopVMLocked()
	s.state = stateCreated
	return reply{status: http.StatusNoContent}
}

// stopVMLocked drops what a running VM holds: its vsock device and taps.
func (s *Server) stopVMLocked() {
	if s.vsock != nil {
		s.vsock.close()
		s.vsock = nil
	}
	for id, files := range s.taps {
		closeAll(files)
		delete(s.taps, id)
	}
	if s.state == stateRunning {
		s.state = stateCreated
	}
}

func (s *Server) addNet(body []byte, files []*os.File, ev *Event) (reply, []*os.File) {
	var nc chapi.NetConfig
	if err := decodeStrict(body, &nc); err != nil {
		return chError(http.StatusBadRequest, "Failed to deserialize JSON", err.Error()), files
	}
	queues := 2 // the spec's default
	if nc.NumQueues != nil {
		queues = *nc.NumQueues
	}
	ev.NumQueues = queues
	for _, f := range files {
		kind, err := fdKind(f)
		if err != nil {
			return chError(http.StatusBadRequest, "received fd is not open: "+err.Error()), files
		}
		ev.FDKinds = append(ev.FDKinds, kind)
	}
	switch {
	case s.state == stateNone:
		return chError(http.StatusNotFound, "Error from API", "VM is not created"), files
	case len(files) == 0:
		return chError(http.StatusInternalServerError, "Error from API", "fake VMM cannot create taps: send fds"), files
	case queues != 2*len(files):
		return chError(http.StatusInternalServerError, "Error from API", "Invalid config",
			fmt.Sprintf("num_queues %d does not match %d fds (want 2 per fd)", queues, len(files))), files
	case nc.Id == nil || *nc.Id == "":
		return chError(http.StatusInternalServerError, "fake VMM: NIC without id"), files
	case s.hasDeviceLocked(*nc.Id):
		return chError(http.StatusInternalServerError, "Error from API", "Identifier "+*nc.Id+" is not unique"), files
	}
	s.taps[*nc.Id] = files
	s.vm.Net = appendTo(s.vm.Net, nc)
	return s.added(*nc.Id), nil
}

func (s *Server) addDisk(body []byte) reply {
	var dc chapi.DiskConfig
	if err := decodeStrict(body, &dc); err != nil {
		return chError(http.StatusBadRequest, "Failed to deserialize JSON", err.Error())
	}
	switch {
	case s.state == stateNone:
		return chError(http.StatusNotFound, "Error from API", "VM is not created")
	case dc.Id == nil || *dc.Id == "" || dc.Path == nil:
		return chError(http.StatusInternalServerError, "fake VMM: disk without id or path")
	case s.hasDeviceLocked(*dc.Id):
		return chError(http.StatusInternalServerError, "Error from API", "Identifier "+*dc.Id+" is not unique")
	}
	if _, err := os.Stat(*dc.Path); err != nil {
		return chError(http.StatusInternalServerError, "Error from API", "Cannot open disk path", err.Error())
	}
	s.vm.Disks = appendTo(s.vm.Disks, dc)
	return s.added(*dc.Id)
}

// added is the reply to a successful add: cold-plugged into the config before
// boot (204), hot-plugged with a PCI address after (200).
func (s *Server) added(id string) reply {
	if s.state != stateRunning {
		return reply{status: http.StatusNoContent}
	}
	s.nextSlot++
	return reply{http.StatusOK, chapi.PciDeviceInfo{Id: id, Bdf: fmt.Sprintf("0000:00:%02x.0", 5+s.nextSlot)}}
}

func (s *Server) removeDevice(body []byte) reply {
	var rd chapi.VmRemoveDevice
	if err := decodeStrict(body, &rd); err != nil {
		return chError(http.StatusBadRequest, "Failed to deserialize JSON", err.Error())
	}
	if s.state == stateNone {
		return chError(http.StatusNotFound, "Error from API", "VM is not created")
	}
	if rd.Id == nil || !s.hasDeviceLocked(*rd.Id) {
		return chError(http.StatusInternalServerError, "Error from API", "Failed to remove device", "unknown device")
	}
	id := *rd.Id
	closeAll(s.taps[id])
	delete(s.taps, id)
	s.vm.Net = removeFrom(s.vm.Net, func(n chapi.NetConfig) bool { return n.Id != nil && *n.Id == id })
	s.vm.Disks = removeFrom(s.vm.Disks, func(d chapi.DiskConfig) bool { return d.Id != nil && *d.Id == id })
	return reply{status: http.StatusNoContent}
}

func (s *Server) hasDeviceLocked(id string) bool {
	for _, n := range deref(s.vm.Net) {
		if n.Id != nil && *n.Id == id {
			return true
		}
	}
	for _, d := range deref(s.vm.Disks) {
		if d.Id != nil && *d.Id == id {
			return true
		}
	}
	for _, f := range deref(s.vm.Fs) {
		if f.Id != nil && *f.Id == id {
			return true
		}
	}
	return false
}

func appendTo[T any](list *[]T, v T) *[]T {
	l := append(deref(list), v)
	return &l
}

func removeFrom[T any](list *[]T, match func(T) bool) *[]T {
	if list == nil {
		return nil
	}
	l := slices.DeleteFunc(slices.Clone(*list), match)
	return &l
}

func deref[T any](l *[]T) []T {
	if l == nil {
		return nil
	}
	return *l
}

func jsonOrNil(b []byte) json.RawMessage {
	if len(b) == 0 || !json.Valid(b) {
		return nil
	}
	return json.RawMessage(b)
}

func ptr[T any](v T) *T { return &v }
