package initsys

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/klog/v2"
)

// CgroupControllers are the cgroup v2 controllers container limits use.
var CgroupControllers = []string{"cpu", "memory", "pids", "io", "cpuset"}

// EnableCgroupControllers enables CgroupControllers for the children of the
// cgroup v2 root at root and of its child cgroup parent (created if
// missing), under which the containers' cgroups go. A controller the kernel
// lacks is logged and skipped; memory, pids and cpu are required.
func EnableCgroupControllers(root, parent string) error {
	dir := filepath.Join(root, parent)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cgroup %s: %w", dir, err)
	}
	for _, d := range []string{root, dir} {
		if err := enableControllers(d); err != nil {
			return err
		}
	}
	return nil
}

func enableControllers(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", dir, err)
	}
	available := strings.Fields(string(b))
	var errs []error
	for _, c := range CgroupControllers {
		// One write per controller: a write naming several fails as a
		// whole if any one cannot be enabled.
		err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+c), 0)
		if err == nil {
			continue
		}
		required := c == "memory" || c == "pids" || c == "cpu"
		if required {
			errs = append(errs, fmt.Errorf("enable %s controller in %s (available: %v): %w", c, dir, available, err))
			continue
		}
		klog.InfoS("Cgroup controller unavailable", "controller", c, "cgroup", dir, "err", err)
	}
	return errors.Join(errs...)
}
