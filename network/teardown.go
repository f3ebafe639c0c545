package network

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/containernetworking/cni/libcni"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// Teardown undoes Setup: CNI DEL with the config and arguments ADD used
// (libcni supplies the cached result as prevResult), then the netns, whose
// removal takes the veth, taps and qdiscs with it, then the record. It is
// idempotent and works from the record alone, so it can follow a failed
// Setup, another Teardown or a daemon restart. When DEL fails the netns and
// record stay, so a retry runs DEL again.
func (m *Manager) Teardown(ctx context.Context, podID string) error {
	if err := validatePodID(podID); err != nil {
		return fmt.Errorf("tear down network of pod %q: %w", podID, err)
	}
	defer m.locks.lock(podID)()
	rec, err := m.records.get(podID)
	if errors.Is(err, os.ErrNotExist) {
		// Never set up, or already torn down; the netns is removed before
		// the record, so this only clears a leftover of a foreign crash.
		return removeNetNS(m.NetNSPath(podID))
	}
	if err != nil {
		return fmt.Errorf("tear down network of pod %q: %w", podID, err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := m.cniDel(ctx, rec); err != nil {
		return fmt.Errorf("tear down network of pod %q: %w", podID, err)
	}
	if err := removeNetNS(rec.NetNS); err != nil {
		return fmt.Errorf("tear down network of pod %q: %w", podID, err)
	}
	if err := m.records.remove(podID); err != nil {
		return fmt.Errorf("tear down network of pod %q: %w", podID, err)
	}
	klog.InfoS("Tore down pod network", "podSandboxID", podID)
	return nil
}

// cniDel runs DEL for rec. A namespace that is gone or was never mounted
// is passed as empty, which plugins must accept: they then release only
// host-side state (IP reservations, NAT rules).
func (m *Manager) cniDel(ctx context.Context, rec podRecord) error {
	list, err := libcni.NetworkConfFromBytes(rec.ConfList)
	if err != nil {
		return fmt.Errorf("recorded network config: %w", err)
	}
	nsPath := rec.NetNS
	if !isNetNS(nsPath) {
		nsPath = ""
	}
	if err := m.cni.DelNetworkList(ctx, list, runtimeConf(rec.Request, nsPath, rec.IfName)); err != nil {
		return fmt.Errorf("CNI DEL in network %q: %v: %w", list.Name, err, ErrPlugin)
	}
	return nil
}

// isNetNS reports whether path is a mounted network namespace.
func isNetNS(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}
