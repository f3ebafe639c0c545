package podvm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// Containers run in the guest with Debian's runc 1.1.5, which the guest
// image carries (see podvm/guest); the agent validates each OCI spec,
// writes the bundle and drives runc. A container's init process is a
// Process under the container's ID, and an exec'd process a Process under
// its own ID, so Wait, Signal, Resize and Remove work on both.

// Guest paths an OCI spec refers to.
const (
	// GuestContainersDir holds each container's rootfs, as
	// GuestContainersDir/<id>/rootfs (see PrepareRootfs).
	GuestContainersDir = GuestSharedDir + "/containers"
	// GuestNetDir holds resolv.conf, hostname and hosts written by
	// ConfigureNetwork; bind-mount them at /etc/resolv.conf, /etc/hostname
	// and /etc/hosts.
	GuestNetDir = "/run/podvisor/net"
	// GuestCgroupParent is the cgroup every container's cgroupsPath must be
	// under: GuestCgroupParent/<id>.
	GuestCgroupParent = "/podvisor"
)

// ErrInvalidContainer means a container request could not be encoded.
var ErrInvalidContainer = errors.New("invalid container request")

// ContainerSpec describes a container to create.
type ContainerSpec struct {
	ID string
	// Spec is the OCI runtime spec. Root.Path must be under
	// GuestContainersDir/<ID>/; bind-mount sources under GuestSharedDir or
	// GuestNetDir; no hooks. An empty Linux.CgroupsPath becomes
	// GuestCgroupParent/<ID>.
	Spec *specs.Spec
	// Terminal must equal Spec.Process.Terminal; with it Stdout carries
	// the terminal's output and Stderr is unused.
	Terminal bool
	// Which stdio streams to connect.
	Stdin, Stdout, Stderr bool
}

// CreateContainer creates a container (runc create). Its init process
// waits for StartContainer; the returned Process follows it.
func (v *VM) CreateContainer(ctx context.Context, cs ContainerSpec) (_ *Process, retErr error) {
	if cs.Spec == nil {
		return nil, fmt.Errorf("%w: container %q: no spec", ErrInvalidContainer, cs.ID)
	}
	data, err := json.Marshal(cs.Spec)
	if err != nil {
		return nil, fmt.Errorf("%w: container %q: %w", ErrInvalidContainer, cs.ID, err)
	}
	st, err := v.openStdio(ctx, cs.ID, cs.Stdin, cs.Stdout, cs.Stderr)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	resp, err := v.agent.client.CreateContainer(ctx, &agentpb.CreateContainerRequest{
		Id:         cs.ID,
		BundleSpec: data,
		Terminal:   cs.Terminal,
		Stdin:      cs.Stdin,
		Stdout:     cs.Stdout,
		Stderr:     cs.Stderr,
		AckOutput:  true,
	})
	if err != nil {
		st.close()
		return nil, fmt.Errorf("create container %q: %w", cs.ID, err)
	}
	p := &Process{vm: v, id: cs.ID, pid: int(resp.Pid)}
	st.attach(p, cs.Stdin, cs.Stdout, cs.Stderr, resp.AckOutput)
	return p, nil
}

// StartContainer starts a created container's user process (runc start).
func (v *VM) StartContainer(ctx context.Context, id string) error {
	if _, err := v.agent.client.StartContainer(ctx, &agentpb.StartContainerRequest{Id: id}); err != nil {
		return fmt.Errorf("start container %q: %w", id, err)
	}
	return nil
}

// ExecSpec describes a process to run in a running container.
type ExecSpec struct {
	// ID names the process; it must differ from every container and
	// process ID in the VM.
	ID string
	// Process is the OCI process (args, env, cwd, user, terminal,
	// capabilities, ...). Process.Terminal selects a pty.
	Process *specs.Process
	// Which stdio streams to connect.
	Stdin, Stdout, Stderr bool
}

// Exec runs a process in a running container (runc exec).
func (v *VM) Exec(ctx context.Context, containerID string, es ExecSpec) (*Process, error) {
	if es.Process == nil {
		return nil, fmt.Errorf("%w: exec %q: no process", ErrInvalidContainer, es.ID)
	}
	data, err := json.Marshal(es.Process)
	if err != nil {
		return nil, fmt.Errorf("%w: exec %q: %w", ErrInvalidContainer, es.ID, err)
	}
	st, err := v.openStdio(ctx, es.ID, es.Stdin, es.Stdout, es.Stderr)
	if err != nil {
		return nil, fmt.Errorf("exec in container %q: %w", containerID, err)
	}
	resp, err := v.agent.client.ExecProcess(ctx, &agentpb.ExecProcessRequest{
		ContainerId: containerID,
		Id:          es.ID,
		Process:     data,
		Terminal:    es.Process.Terminal,
		Stdin:       es.Stdin,
		Stdout:      es.Stdout,
		Stderr:      es.Stderr,
		AckOutput:   true,
	})
	if err != nil {
		st.close()
		return nil, fmt.Errorf("exec %q in container %q: %w", es.ID, containerID, err)
	}
	p := &Process{vm: v, id: es.ID, pid: int(resp.Pid)}
	st.attach(p, es.Stdin, es.Stdout, es.Stderr, resp.AckOutput)
	return p, nil
}

// DeleteContainer kills the container if it still runs, deletes it and
// forgets its init process; the ID can then be used again. Deleting an
// unknown container succeeds. It does not touch the rootfs: call the
// cleanup PrepareRootfs returned afterwards.
func (v *VM) DeleteContainer(ctx context.Context, id string) error {
	if _, err := v.agent.client.DeleteContainer(ctx, &agentpb.DeleteContainerRequest{Id: id}); err != nil {
		return fmt.Errorf("delete container %q: %w", id, err)
	}
	return nil
}

// UpdateContainerResources applies new cgroup limits (runc update).
func (v *VM) UpdateContainerResources(ctx context.Context, id string, res *specs.LinuxResources) error {
	if res == nil {
		return fmt.Errorf("%w: update container %q: no resources", ErrInvalidContainer, id)
	}
	data, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("%w: update container %q: %w", ErrInvalidContainer, id, err)
	}
	_, err = v.agent.client.UpdateContainerResources(ctx, &agentpb.UpdateContainerResourcesRequest{Id: id, LinuxResources: data})
	if err != nil {
		return fmt.Errorf("update container %q: %w", id, err)
	}
	return nil
}
