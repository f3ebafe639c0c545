// Package ocispec builds the OCI runtime spec of a container from its CRI
// config, the pod's config and the image config, with containerd's
// defaults (capabilities, masked and read-only paths, mounts, rlimits) so
// that workloads behave as they do under containerd. The container runs
// inside the pod's VM: host paths never appear in the spec, only guest
// paths that the caller obtained from the VM; namespaces are the guest's.
//
// Everything here is pure: no I/O except reading a Localhost seccomp
// profile, so the rules are tested table by table.
package ocispec
