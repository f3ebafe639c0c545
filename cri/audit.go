package cri

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"sync"
	"time"
)

// mutatingMethods are the RPCs the audit log records (by method name).
var mutatingMethods = map[string]bool{
	"RunPodSandbox": true, "StopPodSandbox": true, "RemovePodSandbox": true,
	"CreateContainer": true, "StartContainer": true, "StopContainer": true, "RemoveContainer": true,
	"UpdateContainerResources": true, "ReopenContainerLog": true,
	"ExecSync": true, "Exec": true, "Attach": true, "PortForward": true,
	"UpdateRuntimeConfig": true, "CheckpointContainer": true, "CheckpointPod": true, "RestorePod": true,
	"PullImage": true, "RemoveImage": true,
}

// AuditRecord is one line of the audit log.
type AuditRecord struct {
	Time         time.Time `json:"time"`
	Method       string    `json:"method"`
	RequestID    string    `json:"requestID"`
	PodSandboxID string    `json:"podSandboxID,omitempty"`
	ContainerID  string    `json:"containerID,omitempty"`
	Image        string    `json:"image,omitempty"`
	Code         string    `json:"code"`
	DurationMS   int64     `json:"durationMs"`
}

// AuditLog appends one JSON line per mutating RPC to a 0600 file.
type AuditLog struct {
	mu sync.Mutex
	f  *os.File
}

// OpenAuditLog opens (creating, mode 0600) the audit log at p.
func OpenAuditLog(p string) (*AuditLog, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit log mode: %w", err)
	}
	return &AuditLog{f: f}, nil
}

// Record writes rec as one line (a single write, so lines never interleave).
func (a *AuditLog) Record(rec AuditRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_, err = a.f.Write(append(b, '\n'))
	return err
}

// Close closes the file.
func (a *AuditLog) Close() error { return a.f.Close() }

// methodName is the last element of a full gRPC method name.
func methodName(full string) string { return path.Base(full) }
