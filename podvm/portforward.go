package podvm

import (
	"context"
	"fmt"
	"net"
)

// DialPort connects to TCP port on the guest's loopback through the agent
// (CRI port-forward): the pod's network namespace on the host does not
// reach into the guest, the agent does.
func (v *VM) DialPort(ctx context.Context, port int32) (net.Conn, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("%w: port %d out of range 1-65535", ErrInvalidSpec, port)
	}
	st, err := v.agent.session.OpenPort(ctx, uint16(port))
	if err != nil {
		return nil, fmt.Errorf("port-forward to guest port %d: %w", port, err)
	}
	return st, nil
}
