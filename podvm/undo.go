package podvm

import "time"

// undoTimeout bounds the whole rollback of a failed boot. Rollback runs on a
// fresh context: the request that started the boot may be gone already.
const undoTimeout = 30 * time.Second
