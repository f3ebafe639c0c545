package cri

import (
	"context"
	"errors"
	"fmt"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/cri/errdefs"
	"github.com/podvisor/podvisor/cri/ocispec"
	"github.com/podvisor/podvisor/cri/store"
	"github.com/podvisor/podvisor/cri/store/sandbox"
)

// RunPodSandbox boots a pod VM with its network.
//
// The boot is an operation of the Service (inflight.go), bounded by the
// boot timeout, not by the request: a caller that gives up gets its
// context's error while the boot goes on. Retries are recognised by the
// sandbox name, i.e. the pod's metadata (name, namespace, uid, attempt),
// which is how kubelet retries:
//   - while the boot for that name is in progress, the retry waits for it
//     and returns the same sandbox ID (or its error): one VM, never two;
//   - once it is done and the sandbox is ready, the retry returns its ID
//     at once. kubelet only reuses an attempt number when it never learnt
//     the ID (its earlier call timed out), so this hands it the sandbox it
//     asked for instead of failing until a relist finds it;
//   - a sandbox of that name that is not ready (stopped, VM lost) is
//     AlreadyExists: a new sandbox needs a new attempt (kubelet increments
//     it) or the old one removed. Returning a stopped sandbox would break
//     the rule that RunPodSandbox returns a ready one.
//
// (containerd fails a retry during the first call with "failed to reserve
// sandbox name"; kubelet then sees that error until the first call ends.)
func (s *Service) RunPodSandbox(ctx context.Context, r *runtime.RunPodSandboxRequest) (*runtime.RunPodSandboxResponse, error) {
	cfg := r.GetConfig()
	if err := validateSandboxConfig(cfg); err != nil {
		return nil, fmt.Errorf("run pod sandbox: %w", err)
	}
	const usernsField = "config.linux.security_context.namespace_options.userns_options"
	if err := validateUserns(usernsField, cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions(), s.b.Features.UserNamespaces); err != nil {
		return nil, fmt.Errorf("run pod sandbox: %w", err)
	}
	if err := validateRuntimeHandler(r.RuntimeHandler); err != nil {
		return nil, err
	}
	vcpus, mem, err := s.sandboxSize(cfg.GetLinux().GetResources())
	if err != nil {
		return nil, fmt.Errorf("run pod sandbox: %w", err)
	}
	name := sandboxName(cfg.Metadata)
	o, err := s.sandboxOp(ctx, name, r, vcpus, mem)
	if err != nil {
		return nil, fmt.Errorf("run pod sandbox %q: %w", name, err)
	}
	if err := o.wait(ctx); err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return nil, fmt.Errorf("run pod sandbox %q: stopped waiting; the boot of %s goes on and a retry with the same metadata returns it: %w", name, o.id, err)
		}
		return nil, fmt.Errorf("run pod sandbox %q: %w", name, err)
	}
	return &runtime.RunPodSandboxResponse{PodSandboxId: o.id}, nil
}

// sandboxOp returns the boot in flight for name, starts one, or finds the
// ready sandbox that already has the name.
func (s *Service) sandboxOp(ctx context.Context, name string, r *runtime.RunPodSandboxRequest, vcpus, mem int) (*op, error) {
	key := "sandbox/" + name
	s.ops.mu.Lock()
	defer s.ops.mu.Unlock()
	o, err := s.ops.lookupLocked(key)
	if err != nil {
		return nil, err
	}
	if o != nil {
		klog.InfoS("RunPodSandbox retried during its boot: waiting for that boot", "name", name, "podSandboxID", o.id)
		return o, nil
	}
	id := store.GenerateID()
	if err := s.sandboxNames.Reserve(name, id); err != nil {
		// No boot in flight: the name belongs to an existing sandbox
		// (or one being removed).
		if holder, ok := s.sandboxNames.Holder(name); ok {
			if sb, gerr := s.sandboxes.Get(holder); gerr == nil && sb.Status.State == sandbox.StateReady {
				klog.InfoS("RunPodSandbox retried: returning the sandbox created for it", "name", name, "podSandboxID", sb.ID)
				return finishedOp(sb.ID), nil
			}
		}
		return nil, fmt.Errorf("%w; it is not ready: remove it or use a new attempt", err)
	}
	o = newOp(id)
	s.launchLocked(ctx, key, o, s.cfg.PodVM.BootTimeout.Std()+sandboxSetupMargin, func(ctx context.Context) error {
		if err := s.runSandbox(ctx, id, name, r, vcpus, mem); err != nil {
			s.sandboxNames.Release(name, id)
			return err
		}
		s.sandboxNames.Commit(name, id)
		klog.InfoS("Pod sandbox ready", "podSandboxID", id, "name", name)
		// As containerd: sandbox lifecycle events carry the sandbox ID.
		s.emit(id, id, runtime.ContainerEventType_CONTAINER_CREATED_EVENT)
		s.emit(id, id, runtime.ContainerEventType_CONTAINER_STARTED_EVENT)
		return nil
	})
	return o, nil
}

// runSandbox is the boot as named steps, each with its undo.
func (s *Service) runSandbox(ctx context.Context, id, name string, r *runtime.RunPodSandboxRequest, vcpus, mem int) (retErr error) {
	cfg := r.Config
	var undo undoStack
	defer func() {
		if retErr != nil {
			undo.run(ctx, "podSandboxID", id)
		}
	}()
	hostname := ocispec.PodHostname(cfg)
	dns := dnsConfig(cfg.DnsConfig)

	pn, err := s.b.Network.Setup(ctx, NetworkRequest{
		SandboxID: id, Name: cfg.Metadata.Name, Namespace: cfg.Metadata.Namespace, UID: cfg.Metadata.Uid,
		Hostname: hostname, PortMappings: cfg.PortMappings, DNS: dns,
	})
	if err != nil {
		return fmt.Errorf("set up pod network: %w", err)
	}
	undo.push("tear down pod network", func(ctx context.Context) error { return s.b.Network.Teardown(ctx, id) })

	vm, err := s.b.VMs.Boot(ctx, VMSpec{
		SandboxID: id, VCPUs: vcpus, MemoryMiB: mem, Hostname: hostname,
		Network: pn, DNS: dns, Sysctls: cfg.GetLinux().GetSysctls(), LogDirectory: cfg.LogDirectory,
	})
	if err != nil {
		return fmt.Errorf("boot pod VM: %w", err)
	}
	undo.push("stop pod VM", vm.Stop)

	meta := sandbox.Metadata{
		Name: name, Config: cfg, RuntimeHandler: r.RuntimeHandler,
		NetNSPath: pn.NetNSPath(), IPs: pn.IPs(), VCPUs: vcpus, MemoryMiB: mem, CreatedAt: time.Now(),
	}
	// Plugins hear of the pod once it is up and before anyone else sees
	// it: it is stored (listed, usable) only once they agreed.
	unblock := s.nri.blockSync()
	defer unblock()
	if s.nri != nil {
		pod := nriPodFrom(id, meta)
		undo.push("tell NRI plugins the pod is gone", func(ctx context.Context) error {
			s.nri.stopPodSandbox(ctx, pod)
			s.nri.removePodSandbox(ctx, pod)
			return nil
		})
		if err := s.nri.runPodSandbox(ctx, pod); err != nil {
			return err
		}
	}
	if err := s.sandboxes.Add(id, meta, sandbox.Status{State: sandbox.StateReady}); err != nil {
		return fmt.Errorf("store sandbox: %w", err)
	}
	s.mu.Lock()
	s.vms[id] = vm
	s.mu.Unlock()
	go s.watchVM(id, vm)
	return nil
}

// watchVM marks the sandbox not ready when its VM is lost.
func (s *Service) watchVM(id string, vm PodVM) {
	select {
	case <-s.svcCtx.Done():
		return
	case <-vm.Done():
	}
	s.mu.Lock()
	current := s.vms[id] == vm
	s.mu.Unlock()
	if !current {
		return // stopped on purpose
	}
	_, err := s.sandboxes.Update(id, func(st sandbox.Status) (sandbox.Status, error) {
		if st.State == sandbox.StateReady {
			st.State, st.Reason = sandbox.StateNotReady, "pod VM lost"
		}
		return st, nil
	})
	klog.InfoS("Pod VM lost: sandbox not ready", "podSandboxID", id, "err", err)
	s.emit(id, id, runtime.ContainerEventType_CONTAINER_STOPPED_EVENT)
}

func dnsConfig(d *runtime.DNSConfig) *DNSConfig {
	if d == nil {
		return nil
	}
	return &DNSConfig{Servers: d.Servers, Searches: d.Searches, Options: d.Options}
}

// validateRuntimeHandler accepts the default handler only: every pod is a
// VM, and no handler for host namespaces is configured.
func validateRuntimeHandler(h string) error {
	if h != "" && h != RuntimeHandlerName {
		return fmt.Errorf("runtime_handler %q: only %q is configured: %w", h, RuntimeHandlerName, errdefs.ErrInvalidArgument)
	}
	return nil
}

// sandboxSize derives a VM's vCPUs and memory from the pod-level resources
// kubelet sends (the sum of its containers' limits plus overhead), or the
// configured defaults.
func (s *Service) sandboxSize(r *runtime.LinuxContainerResources) (vcpus, memMiB int, err error) {
	c := s.cfg.Sandbox
	vcpus, memMiB = c.DefaultVCPUs, c.DefaultMemoryMiB
	if r.GetCpuQuota() > 0 && r.GetCpuPeriod() > 0 {
		vcpus = int((r.CpuQuota + r.CpuPeriod - 1) / r.CpuPeriod)
		if vcpus > c.MaxVCPUs {
			return 0, 0, fmt.Errorf("config.linux.resources.cpu_quota asks for %d vCPUs, more than the %d allowed: %w", vcpus, c.MaxVCPUs, errdefs.ErrInvalidArgument)
		}
	}
	if l := r.GetMemoryLimitInBytes(); l > 0 {
		memMiB = int((l+(1<<20)-1)>>20) + c.OverheadMiB
		if memMiB > c.MaxMemoryMiB {
			return 0, 0, fmt.Errorf("config.linux.resources.memory_limit_in_bytes asks for %d MiB, more than the %d allowed: %w", memMiB, c.MaxMemoryMiB, errdefs.ErrInvalidArgument)
		}
		memMiB = max(memMiB, 128)
	}
	return vcpus, memMiB, nil
}
