// Package network owns the host side of pod networking: one network
// namespace per pod created and bind-mounted by podvisor, CNI ADD/DEL through
// libcni, a tap device per CNI interface wired to the CNI veth with tc
// mirred redirects (the tc-filter model), and the description of interfaces,
// routes and DNS that the guest agent applies inside the VM. The VMM runs
// inside the pod namespace and is handed the tap files this package opens.
package network

import "errors"

// Error kinds, wrapped with context by this package and mapped to gRPC codes
// by the CRI layer.
var (
	// ErrInvalidArgument: a request, config or sysctl failed validation.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotReady: no usable CNI network config (CRI NetworkReady=false).
	ErrNotReady = errors.New("network plugin not ready")
	// ErrAlreadyExists: the pod already has a network.
	ErrAlreadyExists = errors.New("pod network already exists")
	// ErrNotFound: the pod has no network (never set up, or torn down).
	ErrNotFound = errors.New("pod network not found")
	// ErrPlugin: a CNI plugin failed.
	ErrPlugin = errors.New("CNI plugin failed")
)
