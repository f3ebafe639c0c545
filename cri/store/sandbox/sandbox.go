// Package sandbox defines the persisted record of a pod sandbox: metadata
// fixed when RunPodSandbox succeeds and a status changed only through the
// store's Update.
package sandbox

import (
	"time"

	bolt "go.etcd.io/bbolt"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/store"
)

// Metadata is fixed at creation.
type Metadata struct {
	// Name is the reserved name, derived from the CRI metadata.
	Name   string                    `json:"name"`
	Config *runtime.PodSandboxConfig `json:"config"`
	// RuntimeHandler is the handler requested by kubelet ("" = default).
	RuntimeHandler string `json:"runtimeHandler,omitempty"`
	// NetNSPath is the pod network namespace on the host.
	NetNSPath string `json:"netnsPath,omitempty"`
	// IPs are the pod IPs, primary first.
	IPs []string `json:"ips,omitempty"`
	// VCPUs and MemoryMiB are what the VM was booted with.
	VCPUs     int       `json:"vcpus"`
	MemoryMiB int       `json:"memoryMiB"`
	CreatedAt time.Time `json:"createdAt"`
}

// State is the sandbox state as CRI reports it.
type State string

const (
	StateReady    State = "ready"
	StateNotReady State = "notready"
)

// Status changes over the sandbox's life.
type Status struct {
	State State `json:"state"`
	// Reason says why a sandbox is not ready (stopped, VM lost).
	Reason string `json:"reason,omitempty"`
	// NetworkDown is set once the pod network was torn down.
	NetworkDown bool `json:"networkDown,omitempty"`
	// Removing is set while RemovePodSandbox runs.
	Removing bool `json:"removing,omitempty"`
	// StopNotified is set once NRI plugins were told the sandbox stopped:
	// they hear it once, however often StopPodSandbox is called.
	StopNotified bool `json:"stopNotified,omitempty"`
}

// Sandbox is one stored record.
type Sandbox = store.Record[Metadata, Status]

// Store is the sandbox store.
type Store = store.Store[Metadata, Status]

// Open loads the sandbox store from db.
func Open(db *bolt.DB) (*Store, error) {
	return store.Open[Metadata, Status](db, "sandboxes")
}

// CRIState maps the state to its CRI enum.
func (s State) CRIState() runtime.PodSandboxState {
	if s == StateReady {
		return runtime.PodSandboxState_SANDBOX_READY
	}
	return runtime.PodSandboxState_SANDBOX_NOTREADY
}
