package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	nri "github.com/containerd/nri/pkg/adaptation"
	nrilog "github.com/containerd/nri/pkg/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/cri/store/container"
	"github.com/podvisor/podvisor/cri/store/sandbox"
)

// NRI (Node Resource Interface) relays the pod and container lifecycle to
// plugins, which may adjust a container before it is created and update
// the resources of running ones. The runtime side is containerd's
// adaptation library; this file starts it and synchronises plugins with
// the service's state, the other nri_*.go files map that state and apply
// what plugins ask for, and the lifecycle files call the hooks.
//
// Ordering: the library serialises the events. A plugin that connects is
// synchronised with the stores while no RunPodSandbox or CreateContainer
// is between its hook and its record (and no exit or removal between its
// record and its hook): callers hold blockSync over those windows, so a
// pod or container is either in the Synchronize set or reaches the plugin
// as an event, never neither.

// nriHooks is the service's NRI runtime; a nil *nriHooks (NRI disabled)
// makes every hook a no-op.
type nriHooks struct {
	a *nri.Adaptation
	s *Service
}

// newNRI creates the NRI runtime of s as cfg says (nil if disabled). It
// has no plugin before start: its hooks are no-ops until then.
func (s *Service) newNRI(cfg NRIConfig) (*nriHooks, error) {
	if !cfg.Enable {
		return nil, nil
	}
	// The library's logger is a process-wide variable it reads unlocked.
	setNRILogger.Do(func() { nrilog.Set(klogNRI{}) })
	nri.SetPluginRegistrationTimeout(cfg.RegistrationTimeout.Std())
	nri.SetPluginRequestTimeout(cfg.RequestTimeout.Std())
	// The library launches the plugins it finds in its plugin path; a
	// directory that does not exist has none, which is how an empty
	// plugin_path launches nothing.
	pluginPath := cfg.PluginPath
	if pluginPath == "" {
		pluginPath = filepath.Join(s.paths.State, "nri-no-plugins")
	}
	opts := []nri.Option{nri.WithPluginPath(pluginPath), nri.WithPluginConfigPath(cfg.PluginConfigPath)}
	if cfg.DisableConnections {
		opts = append(opts, nri.WithDisabledExternalConnections())
	} else {
		if err := os.MkdirAll(filepath.Dir(cfg.SocketPath), 0o700); err != nil {
			return nil, fmt.Errorf("nri: %w", err)
		}
		opts = append(opts, nri.WithSocketPath(cfg.SocketPath))
	}
	n := &nriHooks{s: s}
	a, err := nri.New(RuntimeHandlerName, RuntimeVersion, n.synchronize, n.updateContainers, opts...)
	if err != nil {
		return nil, fmt.Errorf("nri: %w", err)
	}
	n.a = a
	return n, nil
}

// start launches the configured plugins, synchronises them and listens
// for others.
func (n *nriHooks) start(cfg NRIConfig) error {
	if n == nil {
		return nil
	}
	if err := n.a.Start(); err != nil {
		n.a.Stop()
		return fmt.Errorf("nri: %w", err)
	}
	if !cfg.DisableConnections {
		// Plugins see and change every pod: only root may connect.
		if err := os.Chmod(cfg.SocketPath, 0o600); err != nil {
			n.a.Stop()
			return fmt.Errorf("nri: socket %s: %w", cfg.SocketPath, err)
		}
	}
	klog.InfoS("NRI enabled", "socket", cfg.SocketPath, "pluginPath", cfg.PluginPath)
	return nil
}

// stop disconnects the plugins.
func (n *nriHooks) stop() {
	if n != nil {
		n.a.Stop()
	}
}

// blockSync holds back plugin synchronisation until the returned function
// is called. Never hold it twice in one goroutine: a synchronisation
// waiting in between would deadlock it.
func (n *nriHooks) blockSync() (unblock func()) {
	if n == nil {
		return func() {}
	}
	return n.a.BlockPluginSync().Unblock
}

// synchronize hands a connecting plugin every pod and container, then
// applies the updates it asks for.
func (n *nriHooks) synchronize(ctx context.Context, cb nri.SyncCB) error {
	s := n.s
	var pods []*nri.PodSandbox
	for _, sb := range s.sandboxes.List() {
		pods = append(pods, nriPod(sb))
	}
	var ctrs []*nri.Container
	for _, c := range s.containers.List() {
		ctrs = append(ctrs, nriContainer(c))
	}
	updates, err := cb(ctx, pods, ctrs)
	if err != nil {
		return err
	}
	if failed, err := n.updateContainers(ctx, updates); err != nil || len(failed) > 0 {
		klog.InfoS("NRI: container updates asked for at synchronisation failed", "failed", len(failed), "err", err)
	}
	return nil
}

// updateContainers applies container updates plugins asked for outside of
// an UpdateContainerResources, through the same path (no NRI hook: the
// plugins asked for them). It returns the updates that failed and may not
// fail.
func (n *nriHooks) updateContainers(ctx context.Context, updates []*nri.ContainerUpdate) ([]*nri.ContainerUpdate, error) {
	var failed []*nri.ContainerUpdate
	var errs []error
	for _, u := range updates {
		if u == nil {
			continue
		}
		err := n.s.applyNRIUpdate(ctx, u)
		if err == nil {
			continue
		}
		klog.InfoS("NRI: container update failed", "containerID", u.ContainerId, "ignoreFailure", u.IgnoreFailure, "err", err)
		if !u.IgnoreFailure {
			failed = append(failed, u)
			errs = append(errs, err)
		}
	}
	return failed, errors.Join(errs...)
}

// nriUpdateTimeout bounds one plugin-asked update of a container: it
// reaches that container's guest, which may not answer.
const nriUpdateTimeout = 30 * time.Second

// applyNRIUpdate applies one plugin update over the container's current
// resources.
func (s *Service) applyNRIUpdate(ctx context.Context, u *nri.ContainerUpdate) error {
	ctx, cancel := context.WithTimeout(ctx, nriUpdateTimeout)
	defer cancel()
	c, err := s.containers.Get(u.ContainerId)
	if err != nil {
		return err
	}
	if err := checkNRIUpdate(u.GetLinux().GetResources()); err != nil {
		return err
	}
	res := overlayCRIResources(c.Status.Resources, u.GetLinux().GetResources())
	return s.updateResources(ctx, c.ID, res)
}

// adjustByNRI runs the plugins' CreateContainer hook on the container's
// spec and applies their adjustment to it. It returns the updates they
// asked for for other containers, to apply once this one is created.
func (s *Service) adjustByNRI(ctx context.Context, undo *undoStack, vm PodVM, id string, sb sandbox.Sandbox, meta container.Metadata, spec *specs.Spec) ([]*nri.ContainerUpdate, error) {
	if s.nri == nil {
		return nil, nil
	}
	pod, ctr := nriPod(sb), nriContainerFrom(id, meta, spec)
	ctr.State = nriState(container.StateCreated)
	// Plugins before a failing one took the container for created.
	undo.push("tell NRI plugins the container is gone", func(ctx context.Context) error {
		s.nri.stopContainer(ctx, pod, ctr)
		s.nri.removeContainer(ctx, pod, ctr)
		return nil
	})
	adj, updates, err := s.nri.createContainer(ctx, pod, ctr)
	if err != nil {
		return nil, err
	}
	if err := applyNRIAdjustment(ctx, vm, id, spec, adj); err != nil {
		return nil, err
	}
	return updates, nil
}

// ---- pod sandbox events ----

// runPodSandbox tells plugins about a pod about to become ready; an error
// fails RunPodSandbox.
func (n *nriHooks) runPodSandbox(ctx context.Context, pod *nri.PodSandbox) error {
	if n == nil {
		return nil
	}
	if err := n.a.RunPodSandbox(ctx, &nri.RunPodSandboxRequest{Pod: pod}); err != nil {
		return fmt.Errorf("NRI RunPodSandbox: %w", err)
	}
	return nil
}

// stopPodSandbox and removePodSandbox report failures only: a pod's stop
// or removal does not wait on plugins.
func (n *nriHooks) stopPodSandbox(ctx context.Context, pod *nri.PodSandbox) {
	if n == nil {
		return
	}
	if err := n.a.StopPodSandbox(ctx, &nri.StopPodSandboxRequest{Pod: pod}); err != nil {
		klog.ErrorS(err, "NRI StopPodSandbox", "podSandboxID", pod.Id)
	}
}

func (n *nriHooks) removePodSandbox(ctx context.Context, pod *nri.PodSandbox) {
	if n == nil {
		return
	}
	if err := n.a.RemovePodSandbox(ctx, &nri.RemovePodSandboxRequest{Pod: pod}); err != nil {
		klog.ErrorS(err, "NRI RemovePodSandbox", "podSandboxID", pod.Id)
	}
}

// ---- container events ----

// createContainer asks plugins for their adjustment of a container about
// to be created; an error fails CreateContainer.
func (n *nriHooks) createContainer(ctx context.Context, pod *nri.PodSandbox, ctr *nri.Container) (*nri.ContainerAdjustment, []*nri.ContainerUpdate, error) {
	if n == nil {
		return nil, nil, nil
	}
	rpl, err := n.a.CreateContainer(ctx, &nri.CreateContainerRequest{Pod: pod, Container: ctr})
	if err != nil {
		return nil, nil, fmt.Errorf("NRI CreateContainer: %w", err)
	}
	if len(rpl.GetEvict()) > 0 {
		klog.InfoS("NRI: plugins asked to evict containers; podvisor does not evict", "containerID", ctr.Id, "evict", len(rpl.Evict))
	}
	return rpl.GetAdjust(), rpl.GetUpdate(), nil
}

func (n *nriHooks) postCreateContainer(ctx context.Context, pod *nri.PodSandbox, ctr *nri.Container) {
	if n == nil {
		return
	}
	if err := n.a.PostCreateContainer(ctx, &nri.PostCreateContainerRequest{Pod: pod, Container: ctr}); err != nil {
		klog.ErrorS(err, "NRI PostCreateContainer", "containerID", ctr.Id)
	}
}

// startContainer is told before the container starts; an error fails
// StartContainer.
func (n *nriHooks) startContainer(ctx context.Context, pod *nri.PodSandbox, ctr *nri.Container) error {
	if n == nil {
		return nil
	}
	if err := n.a.StartContainer(ctx, &nri.StartContainerRequest{Pod: pod, Container: ctr}); err != nil {
		return fmt.Errorf("NRI StartContainer: %w", err)
	}
	return nil
}

func (n *nriHooks) postStartContainer(ctx context.Context, pod *nri.PodSandbox, ctr *nri.Container) {
	if n == nil {
		return
	}
	if err := n.a.PostStartContainer(ctx, &nri.PostStartContainerRequest{Pod: pod, Container: ctr}); err != nil {
		klog.ErrorS(err, "NRI PostStartContainer", "containerID", ctr.Id)
	}
}

// updateContainer lets plugins amend the resources of an update; it
// returns the resources to apply to ctr (nil: as requested) and the
// updates plugins asked for for other containers.
func (n *nriHooks) updateContainer(ctx context.Context, pod *nri.PodSandbox, ctr *nri.Container, res *nri.LinuxResources) (*nri.LinuxResources, []*nri.ContainerUpdate, error) {
	if n == nil {
		return nil, nil, nil
	}
	rpl, err := n.a.UpdateContainer(ctx, &nri.UpdateContainerRequest{Pod: pod, Container: ctr, LinuxResources: res})
	if err != nil {
		return nil, nil, fmt.Errorf("NRI UpdateContainer: %w", err)
	}
	var own *nri.LinuxResources
	var others []*nri.ContainerUpdate
	for _, u := range rpl.GetUpdate() {
		switch {
		case u == nil:
		case u.ContainerId == ctr.Id:
			own = u.GetLinux().GetResources()
		default:
			others = append(others, u)
		}
	}
	return own, others, nil
}

func (n *nriHooks) postUpdateContainer(ctx context.Context, pod *nri.PodSandbox, ctr *nri.Container) {
	if n == nil {
		return
	}
	if err := n.a.PostUpdateContainer(ctx, &nri.PostUpdateContainerRequest{Pod: pod, Container: ctr}); err != nil {
		klog.ErrorS(err, "NRI PostUpdateContainer", "containerID", ctr.Id)
	}
}

// stopContainer tells plugins a container stopped (by request, on its own
// or with its pod) and applies the updates they ask for in return.
func (n *nriHooks) stopContainer(ctx context.Context, pod *nri.PodSandbox, ctr *nri.Container) {
	if n == nil {
		return
	}
	rpl, err := n.a.StopContainer(ctx, &nri.StopContainerRequest{Pod: pod, Container: ctr})
	if err != nil {
		klog.ErrorS(err, "NRI StopContainer", "containerID", ctr.Id)
		return
	}
	n.updateContainers(ctx, rpl.GetUpdate())
}

func (n *nriHooks) removeContainer(ctx context.Context, pod *nri.PodSandbox, ctr *nri.Container) {
	if n == nil {
		return
	}
	if err := n.a.RemoveContainer(ctx, &nri.RemoveContainerRequest{Pod: pod, Container: ctr}); err != nil {
		klog.ErrorS(err, "NRI RemoveContainer", "containerID", ctr.Id)
	}
}

// notifyContainerStopped sends the StopContainer event of container id,
// once its exit is recorded. Plugins hear it even if the caller gives up.
func (s *Service) notifyContainerStopped(ctx context.Context, id string) {
	if s.nri == nil {
		return
	}
	c, err := s.containers.Get(id)
	if err != nil {
		return
	}
	s.nri.stopContainer(context.WithoutCancel(ctx), s.nriPodOf(c.Metadata.SandboxID), nriContainer(c))
}

// notifySandboxStopped sends the StopPodSandbox event of sandbox id the
// first time it stops.
func (s *Service) notifySandboxStopped(ctx context.Context, id string) {
	if s.nri == nil {
		return
	}
	first := false
	_, err := s.sandboxes.Update(id, func(st sandbox.Status) (sandbox.Status, error) {
		first = !st.StopNotified
		st.StopNotified = true
		return st, nil
	})
	if err != nil || !first {
		return
	}
	s.nri.stopPodSandbox(context.WithoutCancel(ctx), s.nriPodOf(id))
}

// nriPodOf is the NRI view of a stored sandbox, or one with just its ID
// when it is gone.
func (s *Service) nriPodOf(id string) *nri.PodSandbox {
	sb, err := s.sandboxes.Get(id)
	if err != nil {
		return &nri.PodSandbox{Id: id}
	}
	return nriPod(sb)
}

// klogNRI routes the library's log through klog.
type klogNRI struct{}

var setNRILogger sync.Once

func (klogNRI) Debugf(_ context.Context, format string, args ...any) {
	klog.V(4).Infof("NRI: "+format, args...)
}
func (klogNRI) Infof(_ context.Context, format string, args ...any) {
	klog.V(2).Infof("NRI: "+format, args...)
}
func (klogNRI) Warnf(_ context.Context, format string, args ...any) {
	klog.Warningf("NRI: "+format, args...)
}
func (klogNRI) Errorf(_ context.Context, format string, args ...any) {
	klog.Errorf("NRI: "+format, args...)
}
