package ocispec

import (
	"fmt"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podvisor/podvisor/cri/errdefs"
)

// CPUWeight converts cgroup v1 cpu.shares (2-262144) to cgroup v2
// cpu.weight (1-10000) with the formula runc and the kernel docs use.
func CPUWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	if shares < 2 {
		shares = 2
	}
	if shares > 262144 {
		shares = 262144
	}
	return 1 + ((shares-2)*9999)/262142
}

// Resources converts CRI container resources to OCI cgroup v2 resources.
// CPU shares become cpu.weight in the unified map (the guest runs cgroup
// v2). Values out of range are ErrInvalidArgument naming the field.
func Resources(r *runtime.LinuxContainerResources) (*specs.LinuxResources, error) {
	out := &specs.LinuxResources{}
	if r == nil {
		return out, nil
	}
	if err := ValidateResources("linux.resources", r); err != nil {
		return nil, err
	}
	cpu := &specs.LinuxCPU{Cpus: r.CpusetCpus, Mems: r.CpusetMems}
	if r.CpuPeriod > 0 {
		p := uint64(r.CpuPeriod)
		cpu.Period = &p
	}
	if r.CpuQuota > 0 {
		q := r.CpuQuota
		cpu.Quota = &q
	}
	out.Unified = map[string]string{}
	for k, v := range r.Unified {
		out.Unified[k] = v
	}
	if w := CPUWeight(uint64(r.CpuShares)); w > 0 {
		out.Unified["cpu.weight"] = strconv.FormatUint(w, 10)
	}
	if len(out.Unified) == 0 {
		out.Unified = nil
	}
	if cpu.Period != nil || cpu.Quota != nil || cpu.Cpus != "" || cpu.Mems != "" {
		out.CPU = cpu
	}
	if r.MemoryLimitInBytes > 0 {
		l := r.MemoryLimitInBytes
		out.Memory = &specs.LinuxMemory{Limit: &l}
		if r.MemorySwapLimitInBytes > 0 {
			s := r.MemorySwapLimitInBytes
			out.Memory.Swap = &s
		}
	}
	for _, h := range r.HugepageLimits {
		out.HugepageLimits = append(out.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.PageSize, Limit: h.Limit})
	}
	return out, nil
}

// ValidateResources checks ranges; field prefixes the names in errors.
func ValidateResources(field string, r *runtime.LinuxContainerResources) error {
	bad := func(name string, v any, why string) error {
		return fmt.Errorf("%s.%s %v %s: %w", field, name, v, why, errdefs.ErrInvalidArgument)
	}
	switch {
	case r == nil:
		return nil
	case r.CpuPeriod != 0 && (r.CpuPeriod < 1000 || r.CpuPeriod > 1000000):
		return bad("cpu_period", r.CpuPeriod, "out of range 1000-1000000 µs")
	case r.CpuQuota != 0 && r.CpuQuota != -1 && r.CpuQuota < 1000:
		return bad("cpu_quota", r.CpuQuota, "below 1000 µs")
	case r.CpuShares < 0 || r.CpuShares > 262144:
		return bad("cpu_shares", r.CpuShares, "out of range 0-262144")
	case r.MemoryLimitInBytes < 0:
		return bad("memory_limit_in_bytes", r.MemoryLimitInBytes, "is negative")
	case r.MemoryLimitInBytes > 0 && r.MemoryLimitInBytes < 4096:
		return bad("memory_limit_in_bytes", r.MemoryLimitInBytes, "is below one page")
	case r.MemorySwapLimitInBytes < 0 && r.MemorySwapLimitInBytes != -1:
		return bad("memory_swap_limit_in_bytes", r.MemorySwapLimitInBytes, "is negative")
	case r.OomScoreAdj < -1000 || r.OomScoreAdj > 1000:
		return bad("oom_score_adj", r.OomScoreAdj, "out of range -1000-1000")
	}
	for i, h := range r.HugepageLimits {
		if h.PageSize == "" {
			return bad(fmt.Sprintf("hugepage_limits[%d].page_size", i), `""`, "is empty")
		}
	}
	return nil
}

func applyResources(s *specs.Spec, r *runtime.LinuxContainerResources) error {
	res, err := Resources(r)
	if err != nil {
		return err
	}
	res.Devices = s.Linux.Resources.Devices
	s.Linux.Resources = res
	if r != nil && r.OomScoreAdj != 0 {
		adj := int(r.OomScoreAdj)
		s.Process.OOMScoreAdj = &adj
	}
	return nil
}
