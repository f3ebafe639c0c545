// Package agent implements the Agent gRPC service that podvisor-agent, PID 1
// of every pod VM, serves to the host: it starts processes, connects their
// stdio to streams the host opened on the guest channel, signals, waits for
// and forgets them, and reports facts about the guest.
//
// Every request comes from the host over an authenticated channel, but the
// service still validates every field: a bug on either side must become an
// InvalidArgument naming the field, not a crash of PID 1 (which panics the
// guest kernel).
//
// Containers are run with runc (see container.go for why runc and not
// libcontainer in the agent). The guest's root is the initramfs, on which
// pivot_root(2) fails, so runc runs with --no-pivot: it moves the container's
// rootfs onto / in the container's mount namespace and chroots. A container
// process with CAP_SYS_CHROOT could then climb out of that chroot to the
// guest's initramfs root and mounts (the pod's own bundles and shared files;
// the agent's keys are deleted before anything runs). The VM remains the
// isolation boundary between pods; the fix is for the agent to switch_root
// onto a tmpfs copy of the initramfs at boot, after which pivot_root works.
//
// Exit statuses come from the process-wide reaper (package reaper), never
// from os/exec, because PID 1 must reap every orphan.
package agent
