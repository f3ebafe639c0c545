// Package container defines the persisted record of a container: metadata
// fixed by CreateContainer and a status changed only through the store's
// Update.
package container

import (
	"time"

	bolt "go.etcd.io/bbolt"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/store"
)

// Metadata is fixed at creation.
type Metadata struct {
	Name      string                   `json:"name"`
	SandboxID string                   `json:"sandboxID"`
	Config    *runtime.ContainerConfig `json:"config"`
	// ImageRef is the image as requested (tag or digest reference);
	// ImageID is the image config digest it resolved to.
	ImageRef string `json:"imageRef"`
	ImageID  string `json:"imageID"`
	// RepoDigest is the image's first repo digest, reported as image_ref.
	RepoDigest string `json:"repoDigest,omitempty"`
	// ImageName is the image's first repo tag at creation (else ImageRef),
	// reported as the status's image: a name, not the ID kubelet passes.
	ImageName string `json:"imageName,omitempty"`
	// LogPath is the absolute host path of the CRI log file, "" if none.
	LogPath string `json:"logPath,omitempty"`
	// StopSignal is the signal StopContainer sends first.
	StopSignal string `json:"stopSignal,omitempty"`
	// SpecJSON is the OCI runtime spec the container was created with.
	SpecJSON []byte `json:"spec,omitempty"`
	// UID, GID and Groups are the process user the spec was built with.
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
	// Mounts are the CRI mounts as reported by ContainerStatus.
	Mounts    []*runtime.Mount `json:"mounts,omitempty"`
	CreatedAt time.Time        `json:"createdAt"`
}

// State is the container state.
type State string

const (
	StateCreated State = "created"
	StateRunning State = "running"
	StateExited  State = "exited"
	StateUnknown State = "unknown"
)

// CRIState maps the state to its CRI enum.
func (s State) CRIState() runtime.ContainerState {
	switch s {
	case StateCreated:
		return runtime.ContainerState_CONTAINER_CREATED
	case StateRunning:
		return runtime.ContainerState_CONTAINER_RUNNING
	case StateExited:
		return runtime.ContainerState_CONTAINER_EXITED
	}
	return runtime.ContainerState_CONTAINER_UNKNOWN
}

// Status changes over the container's life.
type Status struct {
	State      State     `json:"state"`
	Pid        int       `json:"pid,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	ExitCode   int32     `json:"exitCode"`
	// Reason is Completed, Error, OOMKilled or a start failure reason.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Resources are the current resources (creation, then updates).
	Resources *runtime.LinuxContainerResources `json:"resources,omitempty"`
	// Starting and Removing guard against concurrent Start/Remove.
	Starting bool `json:"starting,omitempty"`
	Removing bool `json:"removing,omitempty"`
}

// Container is one stored record.
type Container = store.Record[Metadata, Status]

// Store is the container store.
type Store = store.Store[Metadata, Status]

// Open loads the container store from db.
func Open(db *bolt.DB) (*Store, error) {
	return store.Open[Metadata, Status](db, "containers")
}
