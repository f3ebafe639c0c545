package main

import (
	"github.com/podvisor/podvisor/cri"
	"github.com/podvisor/podvisor/cri/logs"
)

// logOpener serves cri.LogOpener with CRI log files.
type logOpener struct{}

func (logOpener) Open(path string) (cri.LogWriter, error) {
	return logs.Open(path, logs.Options{})
}
