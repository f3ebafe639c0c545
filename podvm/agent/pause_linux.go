package agent

import (
	"os"
	"os/signal"
	"syscall"
)

// RunPause is the pause process: PID 1 of a pod's shared PID namespace. It
// reaps the orphans re-parented to it and exits on SIGTERM or SIGINT.
func RunPause() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			return
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
