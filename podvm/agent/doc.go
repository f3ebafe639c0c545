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
// Exit statuses come from the process-wide reaper (package reaper), never
// from os/exec, because PID 1 must reap every orphan.
package agent
