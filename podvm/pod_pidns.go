package podvm

import (
	"context"
	"fmt"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// PodPIDNamespace returns the guest PID of the process holding the pod's
// shared PID namespace, which the agent starts on first use. Containers of
// a pod that shares its PID namespace join /proc/PID/ns/pid.
func (v *VM) PodPIDNamespace(ctx context.Context) (int, error) {
	resp, err := v.agent.client.PodPIDNamespace(ctx, &agentpb.Empty{})
	if err != nil {
		return 0, fmt.Errorf("pod PID namespace: %w", err)
	}
	return int(resp.Pid), nil
}
