package podvm

import (
	"context"
	"fmt"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// PodPIDNamespace returns the guest PID of the process holding the pod's
// shared PID namespace, which the agent starts on first use. Containers of
// a pod that shares its PID namespace join /proc/PID/ns/pid. With a
// non-zero userns the holder also owns the pod's user namespace, with those
// mappings (guest IDs), and an IPC namespace owned by it: every container
// of the pod joins /proc/PID/ns/user and, sharing the pod's IPC namespace,
// /proc/PID/ns/ipc. The agent refuses mappings other than those the holder
// was started with.
func (v *VM) PodPIDNamespace(ctx context.Context, userns IDMapping) (int, error) {
	req := &agentpb.PodPIDNamespaceRequest{}
	if !userns.Zero() {
		req.UidMappings = []*agentpb.IDMapping{{ContainerId: userns.UID.ContainerID, HostId: userns.UID.HostID, Size: userns.UID.Size}}
		req.GidMappings = []*agentpb.IDMapping{{ContainerId: userns.GID.ContainerID, HostId: userns.GID.HostID, Size: userns.GID.Size}}
	}
	resp, err := v.agent.client.PodPIDNamespace(ctx, req)
	if err != nil {
		return 0, fmt.Errorf("pod PID namespace: %w", err)
	}
	return int(resp.Pid), nil
}
