package vmmselect

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/klog/v2"
)

// bootIDPath identifies this boot of the host; a probe answer never
// outlives a reboot (KVM modules, nesting and firmware can change).
var bootIDPath = "/proc/sys/kernel/random/boot_id"

// probeRecord is a cached KVM probe answer and what it depends on.
type probeRecord struct {
	Key    string `json:"key"`
	KVM    bool   `json:"kvm"`
	Reason string `json:"reason"`
}

// probeKey names the host boot and the kernel (path, size, mtime).
func probeKey(kernel string) (string, error) {
	boot, err := os.ReadFile(bootIDPath)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(kernel)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s|%s|%d|%d", strings.TrimSpace(string(boot)), kernel, fi.Size(), fi.ModTime().UnixNano()), nil
}

// cachedProbe answers from file when it holds an answer for this boot and
// kernel, else runs probe and records its answer. An unusable cache only
// costs the probe.
func cachedProbe(file, kernel string, probe func() (bool, string)) (bool, string) {
	if file == "" {
		return probe()
	}
	key, err := probeKey(kernel)
	if err != nil {
		return probe()
	}
	if data, err := os.ReadFile(file); err == nil {
		var r probeRecord
		if json.Unmarshal(data, &r) == nil && r.Key == key {
			return r.KVM, r.Reason + " (cached for this host boot)"
		}
	}
	kvm, why := probe()
	data, _ := json.Marshal(probeRecord{Key: key, KVM: kvm, Reason: why})
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err == nil {
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err == nil {
			err = os.Rename(tmp, file)
			if err != nil {
				klog.V(2).InfoS("Caching the KVM probe", "err", err)
			}
		}
	}
	return kvm, why
}
