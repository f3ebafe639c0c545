package cri

import (
	"context"
	"encoding/json"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/store/container"
)

// ContainerStatus reports a container; verbose adds its OCI spec and pid.
func (s *Service) ContainerStatus(_ context.Context, r *runtime.ContainerStatusRequest) (*runtime.ContainerStatusResponse, error) {
	if r.ContainerId == "" {
		return nil, invalid("container_id", "is empty")
	}
	c, err := s.containers.Get(r.ContainerId)
	if err != nil {
		return nil, err
	}
	resp := &runtime.ContainerStatusResponse{Status: s.containerStatus(c)}
	if r.Verbose {
		info, _ := json.Marshal(map[string]any{
			"sandboxID": c.Metadata.SandboxID, "pid": c.Status.Pid,
			"runtimeSpec": json.RawMessage(orNull(c.Metadata.SpecJSON)), "stopSignal": c.Metadata.StopSignal,
		})
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

func orNull(b []byte) []byte {
	if len(b) == 0 {
		return []byte("null")
	}
	return b
}

func (s *Service) containerStatus(c container.Container) *runtime.ContainerStatus {
	cfg := c.Metadata.Config
	st := &runtime.ContainerStatus{
		Id:          c.ID,
		Metadata:    cfg.GetMetadata(),
		State:       c.Status.State.CRIState(),
		CreatedAt:   c.Metadata.CreatedAt.UnixNano(),
		ExitCode:    c.Status.ExitCode,
		Image:       &runtime.ImageSpec{Image: firstNonEmpty(c.Metadata.ImageName, c.Metadata.ImageRef), UserSpecifiedImage: cfg.GetImage().GetUserSpecifiedImage()},
		ImageRef:    c.Metadata.RepoDigest,
		ImageId:     c.Metadata.ImageID,
		Reason:      c.Status.Reason,
		Message:     c.Status.Message,
		Labels:      cfg.GetLabels(),
		Annotations: cfg.GetAnnotations(),
		Mounts:      c.Metadata.Mounts,
		LogPath:     c.Metadata.LogPath,
		User: &runtime.ContainerUser{Linux: &runtime.LinuxContainerUser{
			Uid: int64(c.Metadata.UID), Gid: int64(c.Metadata.GID), SupplementalGroups: groups64(c.Metadata.GID, c.Metadata.Groups),
		}},
		StopSignal: effectiveStopSignal(c.Metadata.StopSignal, cfg.GetStopSignal()),
	}
	if !c.Status.StartedAt.IsZero() {
		st.StartedAt = c.Status.StartedAt.UnixNano()
	}
	if !c.Status.FinishedAt.IsZero() {
		st.FinishedAt = c.Status.FinishedAt.UnixNano()
	}
	if c.Status.Resources != nil {
		st.Resources = &runtime.ContainerResources{Linux: c.Status.Resources}
	}
	return st
}

// groups64 lists the process's groups as kubelet reports them: the
// primary group first.
func groups64(gid uint32, groups []uint32) []int64 {
	out := []int64{int64(gid)}
	for _, g := range groups {
		out = append(out, int64(g))
	}
	return out
}

// effectiveStopSignal is the signal StopContainer sends first (from the
// config, the image or the default) as the CRI enum; requested if the
// name has no CRI value.
func effectiveStopSignal(name string, requested runtime.Signal) runtime.Signal {
	sig, err := parseSignal(name)
	if err != nil {
		return requested
	}
	if v, ok := runtime.Signal_value["SIGNAL_"+unix.SignalName(sig)]; ok {
		return runtime.Signal(v)
	}
	return requested
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
