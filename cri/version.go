package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Version of the runtime, set at build time with
// -ldflags "-X github.com/podvisor/podvisor/cri.RuntimeVersion=…".
var RuntimeVersion = "0.1.0-dev"

const (
	runtimeName    = "podvisor"
	criAPIVersion  = "v1"
	kubeAPIVersion = "0.1.0"
)

// Version reports the runtime's name and versions.
func (s *Service) Version(context.Context, *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	return &runtime.VersionResponse{
		Version:           kubeAPIVersion,
		RuntimeName:       runtimeName,
		RuntimeVersion:    RuntimeVersion,
		RuntimeApiVersion: criAPIVersion,
	}, nil
}
