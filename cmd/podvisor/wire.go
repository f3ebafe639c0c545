package main

import (
	"context"
	"errors"

	"github.com/podvisor/podvisor/cri"
)

// wireBackends builds the adapters from the podvisor packages to the
// interfaces cri needs (cri/backend.go). Each adapter lives in its own file
// here (adapter_podvm.go, adapter_image.go, adapter_network.go,
// adapter_logs.go) and translates its package's error kinds to
// cri/errdefs kinds:
//
//   - cri.VMRuntime (podvm.Manager): Boot → podvm.Manager.Boot with the
//     sandbox's vCPUs, memory, NICs and netns from the cri.PodNetwork
//     (type-asserted to the network adapter's type); Reattach after a
//     restart. The returned cri.PodVM wraps *podvm.VM: containers, execs,
//     rootfs and host-path sharing through the pod's virtio-fs directory,
//     DialPort through the agent.
//   - cri.ImageStore (image.Store): Pull/Get/List/Remove/FsInfo/LayerDirs/
//     ResolveUser; image.ErrNotFound → errdefs.ErrNotFound,
//     ErrInvalidReference/ErrInvalidArgument → ErrInvalidArgument,
//     ErrInUse → ErrFailedPrecondition, ErrUnauthorized → ErrFailedPrecondition.
//   - cri.Network (network): Setup/Teardown/Status; ErrNotReady →
//     ErrFailedPrecondition, ErrInvalidArgument → ErrInvalidArgument,
//     ErrPlugin → ErrUnavailable.
//   - cri.LogOpener (cri/logs): Open(path) → logs.Open(path, logs.Options{}).
//
// Until they exist, the daemon refuses to start rather than pretend: there
// is no fake backend in this binary.
func wireBackends(ctx context.Context, o Options, cfg cri.Config) (cri.Backends, func(), error) {
	_, _, _ = ctx, o, cfg
	return cri.Backends{}, func() {}, errors.Join(
		errors.New("the pod VM backend (podvm adapter) is not wired yet"),
		errors.New("the image backend (image adapter) is not wired yet"),
		errors.New("the network backend (network adapter) is not wired yet"),
		errors.New("the container log backend (cri/logs adapter) is not wired yet"),
	)
}

// wireStreaming starts the streaming server (cri/streaming) on
// cfg.Stream, backed by svc.StreamBackend(), and hands it to svc. It
// returns a function that stops it.
func wireStreaming(svc *cri.Service, cfg cri.Config) (stop func(), err error) {
	_, _ = svc, cfg
	return func() {}, errors.New("the streaming server (cri/streaming adapter) is not wired yet")
}
