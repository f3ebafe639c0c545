package testimage

import (
	"io"
	"log"
)

// discardLogger silences the registry's request log.
func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
