package qemu

import "time"

// launchUndoTimeout bounds the rollback of a failed launch: killing QEMU and
// removing the files the driver created.
const launchUndoTimeout = 30 * time.Second
