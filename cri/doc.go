// Package cri is podvisor's CRI v1 service: the RuntimeService and
// ImageService that kubelet, crictl and critest call. It owns request
// validation, the pod sandbox and container stores, name reservation,
// the lifecycle operations that outlive their request (inflight.go),
// container events, stats and cAdvisor-style metrics, and the gRPC
// interceptors (request IDs, logging, rate limiting, audit, error kinds →
// status codes); it delegates everything that
// touches the host or a guest to the small interfaces in backend.go, which
// cmd/podvisor wires to podvm, image, network, cri/streaming and cri/logs.
//
// Layout: one file per RPC (sandbox_run.go, container_create.go, ...), the
// OCI runtime spec built by the ocispec sub-package, error kinds in errdefs,
// stores under store/.
package cri
