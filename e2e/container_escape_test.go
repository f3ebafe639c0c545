//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/podvisor/podvisor/podvm"
)

// escapeSource tries to reach the guest's root from inside a container, in
// one of two ways, and reports which of its PATH arguments it can see:
//
//   - chroot (CAP_SYS_CHROOT): the classic escape, chroot into a
//     subdirectory without moving the working directory into it, climb
//     with "..", which nothing stops any more, and chroot there. busybox
//     cannot do it: its chroot always changes directory to the new root.
//   - setns (CAP_SYS_ADMIN, a privileged container): lazily unmount the
//     container's root, then re-enter the mount namespace, which puts the
//     root at whatever the namespace's root mount then shows.
//
// Both run on one locked thread with its own filesystem context: setns
// refuses a mount namespace to a thread sharing it, as Go's threads do.
const escapeSource = `package main

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
)

// sysSetns is setns(2) on amd64, the guest's architecture; the syscall
// package does not name it.
const sysSetns = 308

func main() {
	must := func(what string, err error) {
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
			os.Exit(2)
		}
	}
	runtime.LockOSThread()
	must("unshare fs", syscall.Unshare(syscall.CLONE_FS))
	switch os.Args[1] {
	case "chroot":
		must("mkdir", os.MkdirAll("/escape-jail", 0o700))
		must("chroot jail", syscall.Chroot("/escape-jail"))
		for i := 0; i < 64; i++ {
			must("chdir ..", syscall.Chdir(".."))
		}
		must("chroot .", syscall.Chroot("."))
	case "setns":
		fd, err := syscall.Open("/proc/self/ns/mnt", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		must("open mount namespace", err)
		must("umount /", syscall.Unmount("/", syscall.MNT_DETACH))
		if _, _, e := syscall.RawSyscall(sysSetns, uintptr(fd), syscall.CLONE_NEWNS, 0); e != 0 {
			must("setns", e)
		}
	default:
		must("mode", fmt.Errorf("unknown mode %q", os.Args[1]))
	}
	must("chdir /", syscall.Chdir("/"))
	entries, err := os.ReadDir("/")
	must("read /", err)
	for _, e := range entries {
		fmt.Println("root-entry", e.Name())
	}
	for _, p := range os.Args[2:] {
		if _, err := os.Lstat(p); err == nil {
			fmt.Println("visible", p)
		}
	}
}
`

// buildEscape compiles escapeSource into a static binary at dst.
func buildEscape(t *testing.T, dst string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "escape.go")
	if err := os.WriteFile(src, []byte(escapeSource), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goBin, "build", "-o", dst, src)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the escape program: %v\n%s", err, out)
	}
}

// TestContainerEscape checks that a container cannot reach the guest's
// root: runc must pivot_root into the container's root, which detaches the
// guest's mounts from the container's mount namespace, and the initramfs
// under them must be empty. With runc --no-pivot the guest's root and all
// its mounts stay in the namespace, under the container's root, where a
// privileged container finds them.
func TestContainerEscape(t *testing.T) {
	c := newCtrEnv(t, "escape")
	buildEscape(t, filepath.Join(c.lower, "bin", "escape"))

	// What the guest has and a container must never reach: every
	// container's bundle, runc's state, the pod's whole share, the
	// agent binary and the initramfs's runc.
	guestPaths := []string{
		"/run/podvisor/bundles", "/run/runc", podvm.GuestContainersDir,
		"/init", "/usr/sbin/runc", "/etc/podvisor/modules",
	}
	for _, tc := range []struct {
		mode string
		caps []string
	}{
		{"chroot", defaultCaps},
		{"setns", append([]string{"CAP_SYS_ADMIN"}, defaultCaps...)},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ctx := ctx2m(t)
			id := "c-escape-" + tc.mode
			args := append([]string{"/bin/escape", tc.mode}, guestPaths...)
			spec := minimalSpec(id, c.rootfs(t, id), false, args...)
			spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: tc.caps, Effective: tc.caps, Permitted: tc.caps}
			p, err := c.vm.CreateContainer(ctx, podvm.ContainerSpec{ID: id, Spec: spec, Stdout: true, Stderr: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.vm.DeleteContainer(context.Background(), id)
			if err := c.vm.StartContainer(ctx, id); err != nil {
				t.Fatal(err)
			}
			out, errOut, st := collect(t, p)
			t.Logf("root after the escape attempt:\n%s", out)
			if st.Code != 0 {
				// Every step is allowed with these capabilities; a
				// failure would mean the check did not run.
				t.Fatalf("escape program: status %+v, stderr %q", st, errOut)
			}
			for _, line := range strings.Split(out, "\n") {
				if p, ok := strings.CutPrefix(line, "visible "); ok {
					t.Errorf("container escaped its root: the guest's %s is visible", p)
				}
			}
			if err := c.vm.DeleteContainer(ctx, id); err != nil {
				t.Fatal(err)
			}
		})
	}
}
