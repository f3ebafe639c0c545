package cri

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
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

// StreamPodSandboxes is not supported: kubelet falls back to ListPodSandbox.
func (s *Service) StreamPodSandboxes(*runtime.StreamPodSandboxesRequest, grpc.ServerStreamingServer[runtime.StreamPodSandboxesResponse]) error {
	return unimplemented("StreamPodSandboxes")
}

// StreamContainers is not supported: kubelet falls back to ListContainers.
func (s *Service) StreamContainers(*runtime.StreamContainersRequest, grpc.ServerStreamingServer[runtime.StreamContainersResponse]) error {
	return unimplemented("StreamContainers")
}

// StreamContainerStats is not supported.
func (s *Service) StreamContainerStats(*runtime.StreamContainerStatsRequest, grpc.ServerStreamingServer[runtime.StreamContainerStatsResponse]) error {
	return unimplemented("StreamContainerStats")
}

// StreamPodSandboxStats is not supported.
func (s *Service) StreamPodSandboxStats(*runtime.StreamPodSandboxStatsRequest, grpc.ServerStreamingServer[runtime.StreamPodSandboxStatsResponse]) error {
	return unimplemented("StreamPodSandboxStats")
}

// StreamPodSandboxMetrics is not supported.
func (s *Service) StreamPodSandboxMetrics(*runtime.StreamPodSandboxMetricsRequest, grpc.ServerStreamingServer[runtime.StreamPodSandboxMetricsResponse]) error {
	return unimplemented("StreamPodSandboxMetrics")
}

// StreamImages is not supported: kubelet falls back to ListImages.
func (s *imageService) StreamImages(*runtime.StreamImagesRequest, grpc.ServerStreamingServer[runtime.StreamImagesResponse]) error {
	return unimplemented("StreamImages")
}
