package cri

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
)

func unimplemented(what string) error {
	return fmt.Errorf("%s is not supported by podvisor: %w", what, errdefs.ErrUnimplemented)
}

// CheckpointContainer is not supported: checkpointing a container inside a
// pod VM needs CRIU in the guest.
func (s *Service) CheckpointContainer(context.Context, *runtime.CheckpointContainerRequest) (*runtime.CheckpointContainerResponse, error) {
	return nil, unimplemented("CheckpointContainer")
}

// CheckpointPod is not supported.
func (s *Service) CheckpointPod(context.Context, *runtime.CheckpointPodRequest) (*runtime.CheckpointPodResponse, error) {
	return nil, unimplemented("CheckpointPod")
}

// RestorePod is not supported.
func (s *Service) RestorePod(context.Context, *runtime.RestorePodRequest) (*runtime.RestorePodResponse, error) {
	return nil, unimplemented("RestorePod")
}

// UpdatePodSandboxResources is not supported: a pod VM's vCPUs and memory
// are fixed when it boots. kubelet treats Unimplemented as "best effort
// done" and goes on with the resize of the containers
// (UpdateContainerResources, which works inside the VM).
func (s *Service) UpdatePodSandboxResources(context.Context, *runtime.UpdatePodSandboxResourcesRequest) (*runtime.UpdatePodSandboxResourcesResponse, error) {
	return nil, unimplemented("UpdatePodSandboxResources")
}
