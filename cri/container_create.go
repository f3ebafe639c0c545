package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/cri/errdefs"
	"github.com/podvisor/podvisor/cri/ocispec"
	"github.com/podvisor/podvisor/cri/store"
	"github.com/podvisor/podvisor/cri/store/container"
	"github.com/podvisor/podvisor/cri/store/sandbox"
)

// Guest paths the VM backend provides (see podvm).
const (
	guestNetFilesDir   = "/run/podvisor/net"
	guestCgroupParent  = "/podvisor"
	defaultStopSignal  = "SIGTERM"
	RuntimeHandlerName = "podvisor"
)

// CreateContainer builds the container's OCI spec and creates it in the
// pod VM, its output copied to its log file.
//
// The creation is an operation of the Service (inflight.go): a caller that
// gives up gets its context's error while the creation completes, so no
// half-created container is left in the guest. A retry with the same
// container metadata while it runs waits for it and returns the same ID;
// after it finished, the name is taken (AlreadyExists naming the
// container), as with containerd: kubelet then lists the container and
// retries with the next attempt.
func (s *Service) CreateContainer(ctx context.Context, r *runtime.CreateContainerRequest) (*runtime.CreateContainerResponse, error) {
	if r.PodSandboxId == "" {
		return nil, invalid("pod_sandbox_id", "is empty")
	}
	cfg := r.GetConfig()
	if err := validateContainerConfig(cfg); err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	sb, err := s.sandboxes.Get(r.PodSandboxId)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	if err := checkContainerUserns(sb.Metadata.Config, cfg); err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	name := containerName(cfg.Metadata, sb.Metadata.Config.Metadata)
	o, err := s.createOp(ctx, name, sb.ID, cfg)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	if err := o.wait(ctx); err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return nil, fmt.Errorf("create container %q: stopped waiting; the creation of %s goes on and a retry with the same metadata returns it: %w", name, o.id, err)
		}
		return nil, fmt.Errorf("create container %q: %w", name, err)
	}
	return &runtime.CreateContainerResponse{ContainerId: o.id}, nil
}

// createOp returns the creation in flight for name or starts one.
func (s *Service) createOp(ctx context.Context, name, sandboxID string, cfg *runtime.ContainerConfig) (*op, error) {
	key := "container/" + name
	s.ops.mu.Lock()
	defer s.ops.mu.Unlock()
	o, err := s.ops.lookupLocked(key)
	if err != nil {
		return nil, err
	}
	if o != nil {
		klog.InfoS("CreateContainer retried during its creation: waiting for it", "name", name, "containerID", o.id)
		return o, nil
	}
	id := store.GenerateID()
	if err := s.containerNames.Reserve(name, id); err != nil {
		return nil, err
	}
	o = newOp(id)
	s.launchLocked(ctx, key, o, createTimeout, func(ctx context.Context) error {
		if err := s.createInSandbox(ctx, id, name, sandboxID, cfg); err != nil {
			s.containerNames.Release(name, id)
			return err
		}
		s.containerNames.Commit(name, id)
		klog.InfoS("Container created", "containerID", id, "podSandboxID", sandboxID, "name", name)
		s.emit(id, sandboxID, runtime.ContainerEventType_CONTAINER_CREATED_EVENT)
		return nil
	})
	return o, nil
}

// createInSandbox creates the container under the sandbox lock, so that it
// cannot race the sandbox's stop or removal.
func (s *Service) createInSandbox(ctx context.Context, id, name, sandboxID string, cfg *runtime.ContainerConfig) error {
	unlock := s.sandboxLocks.lock(sandboxID)
	defer unlock()
	sb, err := s.sandboxes.Get(sandboxID)
	if err != nil {
		return err
	}
	vm, ok := s.vm(sb.ID)
	if !ok || sb.Status.State != sandbox.StateReady {
		return fmt.Errorf("pod sandbox %s is not ready: %w", sb.ID, errdefs.ErrFailedPrecondition)
	}
	return s.createContainer(ctx, id, name, sb, vm, cfg)
}

func (s *Service) createContainer(ctx context.Context, id, name string, sb sandbox.Sandbox, vm PodVM, cfg *runtime.ContainerConfig) (retErr error) {
	var undo undoStack
	defer func() {
		if retErr != nil {
			undo.run(ctx, "containerID", id)
		}
	}()
	img, err := s.b.Images.Get(ctx, cfg.Image.Image)
	if err != nil {
		return fmt.Errorf("image %q: %w", cfg.Image.Image, err)
	}
	sc := cfg.GetLinux().GetSecurityContext()
	userStr, err := ocispec.UserString(sc, img.Config.User)
	if err != nil {
		return err
	}
	uid, gid, groups, err := s.b.Images.ResolveUser(ctx, img, userStr)
	if err != nil {
		return fmt.Errorf("user %q: %w", userStr, err)
	}
	user, err := ocispec.User(uid, gid, groups, sc)
	if err != nil {
		return err
	}
	seccomp, err := ocispec.Seccomp(sc.GetSeccomp(), sc.GetSeccompProfilePath(), sc.GetPrivileged())
	if err != nil {
		return err
	}
	userns := podUserns(sb.Metadata.Config)
	ns, err := s.podNamespaces(ctx, vm, sb.ID, sc.GetNamespaceOptions(), userns)
	if err != nil {
		return err
	}

	layers, err := s.b.Images.LayerDirs(ctx, img)
	if err != nil {
		return fmt.Errorf("image layers: %w", err)
	}
	undo.push("release container files", func(ctx context.Context) error { return vm.ReleaseContainerFiles(ctx, id) })
	rootfs, err := vm.PrepareRootfs(ctx, id, layers, RootfsOptions{ReadOnly: sc.GetReadonlyRootfs(), Userns: userns})
	if err != nil {
		return fmt.Errorf("prepare rootfs: %w", err)
	}
	mounts, statusMounts, err := s.shareMounts(ctx, vm, id, cfg.Mounts)
	if err != nil {
		return err
	}
	spec, err := ocispec.Build(ocispec.Input{
		ContainerID: id, Config: cfg, Sandbox: sb.Metadata.Config,
		Image:      ocispec.ImageConfig{Entrypoint: img.Config.Entrypoint, Cmd: img.Config.Cmd, Env: img.Config.Env, WorkingDir: img.Config.WorkingDir},
		RootfsPath: rootfs, User: user, Mounts: mounts, Seccomp: seccomp,
		PodPIDNamespace: ns.PodPID, TargetPIDNamespace: ns.TargetPID,
		PodUserNamespace: ns.PodUser, PodIPCNamespace: ns.PodIPC,
		NetFilesDir: guestNetFilesDir, CgroupsPath: guestCgroupParent + "/" + id,
	})
	if err != nil {
		return err
	}
	// Plugins adjust the container before it exists in the guest; it is
	// stored (listed) only once created.
	unblock := s.nri.blockSync()
	defer unblock()
	updates, err := s.adjustByNRI(ctx, &undo, vm, id, sb, container.Metadata{
		Name: name, SandboxID: sb.ID, Config: cfg, ImageRef: cfg.Image.Image, CreatedAt: time.Now(),
	}, spec)
	if err != nil {
		return err
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("encode OCI spec: %w", err)
	}
	logPath := ""
	if dir := sb.Metadata.Config.GetLogDirectory(); dir != "" && cfg.LogPath != "" {
		logPath = filepath.Join(dir, cfg.LogPath)
	}
	var lw LogWriter
	if logPath != "" {
		if lw, err = s.b.Logs.Open(logPath); err != nil {
			return fmt.Errorf("open container log: %w", err)
		}
	}

	proc, err := vm.CreateContainer(ctx, ContainerSpec{ID: id, Spec: spec, Stdin: cfg.Stdin, Stdout: true, Stderr: !cfg.Tty})
	if err != nil {
		if lw != nil {
			lw.Run(nil, nil) // closes it
		}
		return fmt.Errorf("create in pod VM: %w", err)
	}
	undo.push("delete container in pod VM", func(ctx context.Context) error { return vm.DeleteContainer(ctx, id) })
	cio := newContainerIO(id, proc, lw)

	meta := container.Metadata{
		Name: name, SandboxID: sb.ID, Config: cfg, LogPath: logPath, CreatedAt: time.Now(),
		ImageRef: cfg.Image.Image, ImageID: img.ID, RepoDigest: firstOr(img.RepoDigests, img.ID),
		ImageName: firstOr(img.RepoTags, cfg.Image.Image), StopSignal: stopSignal(cfg.StopSignal, img.Config.StopSignal),
		SpecJSON: specJSON, UID: user.UID, GID: user.GID, Groups: user.AdditionalGids, Mounts: statusMounts,
	}
	st := container.Status{State: container.StateCreated, Pid: proc.PID(), Resources: cfg.GetLinux().GetResources()}
	if err := s.containers.Add(id, meta, st); err != nil {
		return fmt.Errorf("store container: %w", err)
	}
	s.addTask(&task{id: id, sandboxID: sb.ID, proc: proc, io: cio, exited: make(chan struct{})})
	// Stored: a plugin that connects from now on finds it. The updates
	// plugins asked for reach other pods' guests and must not hold
	// synchronisation back meanwhile.
	unblock()
	if s.nri != nil {
		if c, err := s.containers.Get(id); err == nil {
			s.nri.postCreateContainer(ctx, nriPod(sb), nriContainer(c))
		}
		s.nri.updateContainers(ctx, updates)
	}
	return nil
}

// shareMounts exposes each CRI mount's host path, or image for an image
// volume, to the guest. Symlinks in the host path are resolved on the host
// first, so the guest never follows a host symlink. It also returns the
// mounts as ContainerStatus reports them: an image volume's with the ID of
// the image it mounts.
func (s *Service) shareMounts(ctx context.Context, vm PodVM, id string, ms []*runtime.Mount) ([]ocispec.Mount, []*runtime.Mount, error) {
	out := make([]ocispec.Mount, 0, len(ms))
	status := make([]*runtime.Mount, 0, len(ms))
	for i, m := range ms {
		if isImageMount(m) {
			guest, imageID, err := s.shareImage(ctx, vm, id, fmt.Sprintf("config.mounts[%d]", i), m)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, ocispec.Mount{
				ContainerPath: m.ContainerPath, GuestSource: guest, Readonly: true,
				RecursiveReadOnly: m.RecursiveReadOnly, Propagation: m.Propagation,
			})
			sm := proto.Clone(m).(*runtime.Mount)
			sm.Image.ImageRef = imageID
			status = append(status, sm)
			continue
		}
		host, err := filepath.EvalSymlinks(m.HostPath)
		if err != nil {
			return nil, nil, fmt.Errorf("mounts[%d].host_path %q: %w: %w", i, m.HostPath, err, errdefs.ErrInvalidArgument)
		}
		guest, subs, err := vm.ShareHostPath(ctx, id, host, m.Readonly, m.RecursiveReadOnly)
		if err != nil {
			return nil, nil, fmt.Errorf("mounts[%d]: share %q with the pod VM: %w", i, host, err)
		}
		out = append(out, ocispec.Mount{
			ContainerPath: m.ContainerPath, GuestSource: guest, Readonly: m.Readonly,
			RecursiveReadOnly: m.RecursiveReadOnly, Propagation: m.Propagation,
		})
		if m.Readonly && !m.RecursiveReadOnly {
			// Non-recursive read-only: the volume's submounts keep their
			// own flags. In the guest they are virtio-fs submounts that
			// appear on first access, below the container's read-only
			// bind, whose flags they would take; binding each one
			// explicitly, after the volume, keeps it as it is on the host.
			for _, rel := range subs {
				out = append(out, ocispec.Mount{
					ContainerPath: path.Join(m.ContainerPath, rel), GuestSource: path.Join(guest, rel),
					Propagation: m.Propagation,
				})
			}
		}
		status = append(status, m)
	}
	return out, status, nil
}

// shareImage mounts an image volume: the image must be present (kubelet
// pulls it first), and it is mounted read-only whatever the container does.
func (s *Service) shareImage(ctx context.Context, vm PodVM, id, field string, m *runtime.Mount) (guest, imageID string, err error) {
	img, err := s.b.Images.Get(ctx, m.Image.Image)
	if err != nil {
		return "", "", fmt.Errorf("%s.image: image %q: %w", field, m.Image.Image, err)
	}
	layers, err := s.b.Images.LayerDirs(ctx, img)
	if err != nil {
		return "", "", fmt.Errorf("%s.image: layers of %q: %w", field, m.Image.Image, err)
	}
	guest, err = vm.ShareImage(ctx, id, layers, m.ImageSubPath)
	if err != nil {
		return "", "", fmt.Errorf("%s: mount image %q (image_sub_path %q): %w", field, m.Image.Image, m.ImageSubPath, err)
	}
	return guest, img.ID, nil
}

// podNamespaces finds the namespaces of the pod a container joins: the
// pod's PID namespace for POD mode and, for a pod with a user namespace,
// that namespace and the pod's IPC namespace, all held by one process in
// the guest; the target container's PID namespace for TARGET mode.
func (s *Service) podNamespaces(ctx context.Context, vm PodVM, sandboxID string, o *runtime.NamespaceOption, userns IDMapping) (ocispec.NamespacePaths, error) {
	var p ocispec.NamespacePaths
	if o.GetPid() == runtime.NamespaceMode_POD || userns != (IDMapping{}) {
		// The pod's namespaces belong to a holder process in the guest,
		// as to kubelet's pause container elsewhere: no container is its
		// PID 1, and it outlives each of them. The holder of a pod with a
		// user namespace is in it, so that the namespaces it holds are
		// owned by it.
		pid, err := vm.PodPIDNamespace(ctx, userns)
		if err != nil {
			return p, fmt.Errorf("pod namespaces: %w", err)
		}
		if o.GetPid() == runtime.NamespaceMode_POD {
			p.PodPID = fmt.Sprintf("/proc/%d/ns/pid", pid)
		}
		if userns != (IDMapping{}) {
			p.PodUser, p.PodIPC = fmt.Sprintf("/proc/%d/ns/user", pid), fmt.Sprintf("/proc/%d/ns/ipc", pid)
		}
	}
	if o.GetPid() == runtime.NamespaceMode_TARGET {
		c, err := s.containers.Get(o.GetTargetId())
		if err != nil || c.Metadata.SandboxID != sandboxID || c.Status.Pid <= 0 {
			return p, fmt.Errorf("linux.security_context.namespace_options.target_id %q: no such container in the pod: %w", o.GetTargetId(), errdefs.ErrInvalidArgument)
		}
		p.TargetPID = fmt.Sprintf("/proc/%d/ns/pid", c.Status.Pid)
	}
	return p, nil
}

func firstOr(xs []string, def string) string {
	if len(xs) > 0 {
		return xs[0]
	}
	return def
}

// stopSignal picks the CRI stop signal, else the image's, else SIGTERM.
func stopSignal(cri runtime.Signal, image string) string {
	if cri != runtime.Signal_SIGNAL_RUNTIME_DEFAULT {
		return strings.TrimPrefix(cri.String(), "SIGNAL_")
	}
	if image != "" {
		return image
	}
	return defaultStopSignal
}

// parseSignal parses "SIGTERM", "TERM" or "15".
func parseSignal(s string) (syscall.Signal, error) {
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err == nil && fmt.Sprint(n) == s {
		if n < 1 || n > 64 {
			return 0, fmt.Errorf("signal %d out of range: %w", n, errdefs.ErrInvalidArgument)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("signal %q unknown: %w", s, errdefs.ErrInvalidArgument)
}
