package cloudhypervisor

import (
	"errors"
	"os"
	"time"
)

// launchUndoTimeout bounds the rollback of a failed launch: killing the
// VMM and removing the files the driver created.
const launchUndoTimeout = 30 * time.Second

// removeFiles removes paths, ignoring those already gone.
func removeFiles(paths ...string) error {
	var errs []error
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
