// Package cloudhypervisor is the Cloud Hypervisor VMM driver. It starts one
// cloud-hypervisor process per VM (own session, pod network namespace,
// dropped credentials, seccomp and landlock on), drives it over the REST API
// on a unix socket in the VM's state directory through the generated client
// in chapi, and reaches the guest agent over hybrid vsock.
//
// Files the driver owns in Config.StateDir: the API socket and its lock, the
// vsock socket, the event-monitor file and the VMM log. Sockets are removed
// whenever the VMM exits; a failed Launch removes every one of them.
package cloudhypervisor
