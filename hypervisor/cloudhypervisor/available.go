package cloudhypervisor

import (
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

const (
	// kvmGetAPIVersion is _IO(KVMIO, 0x00); x/sys/unix does not define it.
	kvmGetAPIVersion = 0xAE00
	// kvmAPIVersion is the only value Linux has ever returned for it.
	kvmAPIVersion = 12
)

// Available reports whether this host can run Cloud Hypervisor VMs: the
// binary is in PATH and /dev/kvm opens read-write and answers. reason says
// what is missing when ok is false.
func Available() (ok bool, reason string) {
	if _, err := exec.LookPath(DefaultOptions().Binary); err != nil {
		return false, fmt.Sprintf("cloud-hypervisor binary: %v", err)
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Sprintf("KVM: %v", err)
	}
	defer f.Close()
	// An openable /dev/kvm can still be a stub (some nested setups): ask it.
	v, err := unix.IoctlRetInt(int(f.Fd()), kvmGetAPIVersion)
	if err != nil {
		return false, fmt.Sprintf("KVM_GET_API_VERSION: %v", err)
	}
	if v != kvmAPIVersion {
		return false, fmt.Sprintf("KVM API version %d, want %d", v, kvmAPIVersion)
	}
	return true, ""
}
