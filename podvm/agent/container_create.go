package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// Files of a container's bundle directory.
const (
	bundleConfig  = "config.json"
	bundleLog     = "runc.log"
	bundlePIDFile = "init.pid"
)

// CreateContainer validates the spec, writes the bundle and runs
// `runc create`. The container's init process is then in the process table
// under the container's id, waiting for StartContainer.
func (s *Service) CreateContainer(ctx context.Context, req *agentpb.CreateContainerRequest) (*agentpb.CreateContainerResponse, error) {
	pid, err := s.createContainer(ctx, req)
	if err != nil {
		klog.V(2).InfoS("CreateContainer failed", "containerID", req.GetId(), "err", err)
		return nil, toStatus(fmt.Errorf("create container: %w", err))
	}
	klog.InfoS("Created container", "containerID", req.GetId(), "pid", pid, "terminal", req.GetTerminal())
	return &agentpb.CreateContainerResponse{Pid: int32(pid), AckOutput: req.GetAckOutput()}, nil
}

func (s *Service) createContainer(ctx context.Context, req *agentpb.CreateContainerRequest) (_ int, retErr error) {
	spec, err := s.validateCreate(req)
	if err != nil {
		return 0, err
	}
	if s.shuttingDown.Load() {
		return 0, fmt.Errorf("the guest is shutting down: %w", ErrFailedPrecondition)
	}
	id := req.GetId()
	c := &container{
		id:     id,
		bundle: filepath.Join(s.cfg.Containers.bundleDir(), id),
		cgroup: spec.Linux.CgroupsPath,
		init:   newProcess(id, spec.Process.Args, spec.Process.Terminal),
	}
	if err := s.containers.reserve(c); err != nil {
		return 0, err
	}
	defer func() {
		if retErr != nil {
			s.containers.release(c)
		}
	}()
	if err := s.procs.reserve(c.init); err != nil {
		return 0, err
	}
	defer func() {
		if retErr != nil {
			s.procs.release(c.init)
		}
	}()

	st, err := takeStreams(ctx, s.cfg.Broker, req, s.cfg.StdioTimeout)
	if err != nil {
		return 0, err
	}
	defer func() {
		if retErr != nil {
			st.closeAll()
		}
	}()
	if err := resolveSpecPaths(id, spec, s.specPaths()); err != nil {
		return 0, err
	}
	if err := writeBundle(c.bundle, spec); err != nil {
		return 0, err
	}
	defer func() {
		if retErr != nil {
			s.cleanupContainer(context.WithoutCancel(ctx), c)
		}
	}()
	l := launch{
		args:        []string{"create", "--bundle", c.bundle},
		containerID: id,
		logFile:     filepath.Join(c.bundle, bundleLog),
		pidFile:     filepath.Join(c.bundle, bundlePIDFile),
		terminal:    spec.Process.Terminal,
	}
	if cs := spec.Process.ConsoleSize; cs != nil {
		l.rows, l.cols = uint32(cs.Height), uint32(cs.Width)
	}
	pid, err := s.launch(ctx, c.init, st, l)
	if err != nil {
		return 0, err
	}
	s.procs.publish(c.init)
	s.containers.publish(c)
	return pid, nil
}

func (s *Service) validateCreate(req *agentpb.CreateContainerRequest) (*specs.Spec, error) {
	if err := validateID(req.GetId()); err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := decodeStrict("bundle_spec", req.GetBundleSpec(), &spec); err != nil {
		return nil, err
	}
	if err := validateSpec(req.GetId(), &spec, s.specPaths()); err != nil {
		return nil, err
	}
	if spec.Process.Terminal != req.GetTerminal() {
		return nil, invalid("terminal", "%v, but bundle_spec.process.terminal is %v", req.GetTerminal(), spec.Process.Terminal)
	}
	if req.GetTerminal() && req.GetStderr() {
		return nil, invalid("stderr", "not available with terminal")
	}
	return &spec, nil
}

func (s *Service) specPaths() specPaths {
	return specPaths{shared: s.cfg.Containers.SharedDir(), net: s.cfg.Containers.NetDir()}
}

// writeBundle writes the validated spec (re-encoded: runc reads exactly
// what was checked) as dir/config.json. dir must not exist: a leftover
// would mean an earlier container of this id was not deleted.
func writeBundle(dir string, spec *specs.Spec) error {
	data, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if os.IsExist(err) {
			return fmt.Errorf("bundle %s left by an earlier container: %w", dir, ErrAlreadyExists)
		}
		return fmt.Errorf("bundle: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, bundleConfig), data, 0o600); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

// cleanupContainer undoes a failed create: whatever runc created is
// deleted, and the bundle removed.
func (s *Service) cleanupContainer(ctx context.Context, c *container) {
	if _, err := s.runRunc(ctx, nil, "delete", "--force", c.id); err != nil && !isNotFound(err) {
		klog.ErrorS(err, "Cleaning up a failed container", "containerID", c.id)
	}
	if err := os.RemoveAll(c.bundle); err != nil {
		klog.ErrorS(err, "Removing the bundle of a failed container", "containerID", c.id)
	}
}
