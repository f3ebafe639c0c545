package agent

import (
	"context"
	"time"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

// shutdownFlushDelay is how long the reply to Shutdown gets, once handed to
// the transport, to leave the guest before the power-off starts.
const shutdownFlushDelay = 200 * time.Millisecond

// Shutdown refuses new processes and powers the guest off after replying.
// Calling it again is harmless.
func (s *Service) Shutdown(ctx context.Context, _ *agentpb.Empty) (*agentpb.Empty, error) {
	s.shuttingDown.Store(true)
	s.shutdownOnce.Do(func() {
		klog.InfoS("Shutdown requested")
		// grpc-go cancels the request's context once the handler has
		// returned and the reply has been queued; that is the signal
		// that the reply is on its way.
		go func() {
			<-ctx.Done()
			time.Sleep(shutdownFlushDelay)
			klog.InfoS("Powering off")
			klog.Flush()
			if err := s.cfg.PowerOff(); err != nil {
				klog.ErrorS(err, "Power off failed")
			}
		}()
	})
	return &agentpb.Empty{}, nil
}
