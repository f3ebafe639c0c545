// Package initsys does what the guest agent must do as PID 1 of a pod VM
// before it can serve the host: take its secrets out of the initramfs, move
// off the initramfs onto a tmpfs root, mount the kernel filesystems, load
// kernel modules, bring up loopback, point its logs at the console, mount
// the pod's shared directory, and finally power the VM off.
//
// The boot order matters; main should do:
//
//  1. TakeHandoff() — first, before anything else runs: it tells a fresh
//     start from the agent re-executed in step 3, and closes the
//     descriptor carrying the secrets before anything can inherit it.
//  2. On a fresh start, ReadAndRemoveSecrets(DefaultSecretsDir). The keys
//     live in the initramfs at /.podvisor/keys, a path no later mount
//     covers (unlike /run, which Setup mounts a tmpfs over), and they are
//     unlinked at once so that no process started later can read them,
//     and so that step 3 cannot copy them. Nothing needs to be mounted
//     for this.
//  3. On a fresh start, if RootIsInitramfs(): SwitchRoot(), then
//     Reexec(secrets), which hands the secrets to the new image in a
//     sealed memfd and does not return. pivot_root(2), which runc needs to
//     confine a container's mount namespace to its root, fails on the
//     initramfs (the root of the mount tree); on the tmpfs moved over it,
//     it works.
//  4. Setup(Options{...}) — /proc, /sys, /dev (+ /dev/pts, /dev/shm),
//     /sys/fs/cgroup, /tmp, /run; kernel modules; lo; hostname.
//  5. SetupConsole() — needs /dev from Setup.
//  6. ReadCmdline() — needs /proc; podvisor.* parameters (never secrets:
//     /proc/cmdline is world-readable).
//  7. MountShared(tag, dir) once the virtio-fs module is loaded.
//
// and PowerOff() at the end. Everything here except the pure helpers
// (ParseModuleList, ParseCmdline, ReadAndRemoveSecrets, the hand-off and
// the tree copy and clean-up SwitchRoot uses) needs PID 1 in a guest and
// is exercised by the VM end-to-end tests.
//
// A Go /init needs file descriptors 0-2 open when it starts, or the Go
// runtime aborts trying to open /dev/null; the kernel opens them on
// /dev/console, so the initramfs must contain a /dev/console node.
package initsys
