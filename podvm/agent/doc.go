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
// libcontainer in the agent). The initramfs cannot be pivot_root(2)ed away,
// so the agent switches root onto a tmpfs copy of it at boot (initsys); runc
// then uses pivot_root, and a container that unmounts its root finds nothing
// of the guest behind it.
//
// Processes outlive host sessions: a host that restarts calls AttachStdio
// to get a process's streams back. Output written meanwhile is kept (a
// bounded amount per stream, see output.go), and a stdin stream broken by
// the host's departure, unlike one the host half-closed, leaves the
// process's stdin open.
//
// Exit statuses come from the process-wide reaper (package reaper), never
// from os/exec, because PID 1 must reap every orphan.
package agent
