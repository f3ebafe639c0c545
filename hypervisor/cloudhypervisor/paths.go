package cloudhypervisor

import "path/filepath"

// Names of the files the driver keeps in a VM's state directory.
const (
	apiSocketName = "ch-api.sock"
	vsockName     = "vsock.sock"
	eventsName    = "ch-events.json"
	logName       = "cloud-hypervisor.log"
)

// Keys of hypervisor.State.Extra.
const (
	extraAPISocket = "apiSocket"
	extraVsock     = "vsockSocket"
)

// maxUnixPath is the usable length of sun_path (108 bytes with its NUL).
const maxUnixPath = 107

// vsockPortSuffixLen bounds the "_<port>" that Cloud Hypervisor appends to the
// vsock socket path for guest-initiated connections.
const vsockPortSuffixLen = len("_4294967295")

type vmPaths struct {
	stateDir  string
	apiSocket string
	vsock     string
	events    string
	log       string
}

func pathsFor(stateDir string) vmPaths {
	return vmPaths{
		stateDir:  stateDir,
		apiSocket: filepath.Join(stateDir, apiSocketName),
		vsock:     filepath.Join(stateDir, vsockName),
		events:    filepath.Join(stateDir, eventsName),
		log:       filepath.Join(stateDir, logName),
	}
}

// apiLock is the lock file Cloud Hypervisor holds next to its API socket so
// that a second instance cannot steal the socket.
func (p vmPaths) apiLock() string { return p.apiSocket + ".lock" }

// sockets are the files that only make sense while the VMM runs.
func (p vmPaths) sockets() []string {
	return []string{p.apiSocket, p.apiLock(), p.vsock}
}
