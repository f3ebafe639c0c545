// Package logs owns container log files in the format kubelet reads: the
// CRI logging format that `kubectl logs`, `crictl logs` and the kubelet's
// log rotation expect.
//
// A log file holds one record per line:
//
//	<timestamp> <stream> <tag> <content>\n
//
// timestamp is RFC 3339 with nanoseconds (time.RFC3339Nano, containerd's
// layout; podvisor writes UTC), stream is "stdout" or "stderr", and tag is "F" for
// a record that ends a line of output or "P" for a partial one: a line longer
// than the maximum record size is cut into "P" records followed by a final
// "F" record, and output that ends without a newline is written as "P". The
// newline that ends a line of output is not part of content, and neither is
// a carriage return just before it (a terminal turns "\n" into "\r\n");
// other carriage returns are kept. These rules follow containerd's CRI
// logger, so kubelet sees the same files under either runtime.
//
// # Writing
//
// A Writer copies a container's stdout and stderr into one file. Each record
// is written by a single write(2) on a file opened with O_APPEND, under a
// mutex, so the two streams interleave by whole records and a reader never
// sees half a record. A terminal container has one stream, stdout.
//
// kubelet rotates a log by renaming the file and then calling
// ReopenContainerLog; Writer.Reopen opens a new file at the same path and
// closes the renamed one once no record is being written to it.
//
// # Daemon restarts
//
// A container's output must survive a podvisor restart, because pods do.
// Resuming is this package's half of the job: a restarted daemon re-attaches
// to the VM, reopens the container's output streams and calls Open on the
// same path with the new readers. The file is opened with O_APPEND and never
// truncated, so the new records follow the old ones.
//
// A Writer keeps at most one unterminated line (shorter than MaxLineSize) in
// memory. Copy writes it as a "P" record when its reader ends, so a graceful
// stop, which closes the stream readers before the daemon exits, loses
// nothing, and the first record written after the restart completes the
// line for kubelet. If the daemon died in the middle of a write, Open ends
// the torn last line with a newline so that the next record starts on a line
// of its own; kubelet skips the one line it cannot parse.
//
// The other half belongs to the guest: output written while no host reader
// is attached must wait in the agent (back-pressuring the process when its
// buffer is full) rather than be discarded, and output read by a daemon that
// was then killed before writing it is lost unless the agent replays what
// the host has not acknowledged.
package logs
