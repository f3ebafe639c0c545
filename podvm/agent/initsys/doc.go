// Package initsys does what the guest agent must do as PID 1 of a pod VM
// before it can serve the host: take its secrets out of the initramfs, mount
// the kernel filesystems, load kernel modules, bring up loopback, point its
// logs at the console, mount the pod's shared directory, and finally power
// the VM off.
//
// The boot order matters; main should do:
//
//  1. ReadAndRemoveSecrets(DefaultSecretsDir) — first, before anything else
//     runs. The keys live in the initramfs at /.podvisor/keys, a path no
//     later mount covers (unlike /run, which Setup mounts a tmpfs over), and
//     they are unlinked at once so that no process started later can read
//     them. Nothing needs to be mounted for this.
//  2. Setup(Options{...}) — /proc, /sys, /dev (+ /dev/pts, /dev/shm),
//     /sys/fs/cgroup, /tmp, /run; kernel modules; lo; hostname.
//  3. SetupConsole() — needs /dev from Setup.
//  4. ReadCmdline() — needs /proc; podvisor.* parameters (never secrets:
//     /proc/cmdline is world-readable).
//  5. MountShared(tag, dir) once the virtio-fs module is loaded.
//
// and PowerOff() at the end. Everything here except the pure helpers
// (ParseModuleList, ParseCmdline, ReadAndRemoveSecrets) needs PID 1 in a
// guest and is exercised by the VM end-to-end tests.
//
// A Go /init needs file descriptors 0-2 open when it starts, or the Go
// runtime aborts trying to open /dev/null; the kernel opens them on
// /dev/console, so the initramfs must contain a /dev/console node.
package initsys
