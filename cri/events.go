package cri

import (
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/cri/errdefs"
)

// eventBuffer is how many events a subscriber may fall behind before it is
// dropped: a slow kubelet must not hold up container lifecycles.
const eventBuffer = 1024

// broadcaster fans container events out to subscribers.
type broadcaster struct {
	mu     sync.Mutex
	subs   map[chan *runtime.ContainerEventResponse]struct{}
	size   int
	closed bool
}

func newBroadcaster(size int) *broadcaster {
	return &broadcaster{subs: map[chan *runtime.ContainerEventResponse]struct{}{}, size: size}
}

// subscribe returns a channel of events, closed when the subscriber is
// dropped or the broadcaster closes, and a cancel function.
func (b *broadcaster) subscribe() (<-chan *runtime.ContainerEventResponse, func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan *runtime.ContainerEventResponse, b.size)
	if b.closed {
		close(ch)
		return ch, func() {}
	}
	b.subs[ch] = struct{}{}
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// publish sends ev to every subscriber without blocking; a subscriber
// whose buffer is full is dropped (its channel closed).
func (b *broadcaster) publish(ev *runtime.ContainerEventResponse) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- ev:
		default:
			klog.InfoS("Dropping slow container event subscriber", "buffer", b.size)
			delete(b.subs, ch)
			close(ch)
		}
	}
}

func (b *broadcaster) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for ch := range b.subs {
		delete(b.subs, ch)
		close(ch)
	}
}

// emit publishes an event about a container (or, with containerID ==
// sandboxID, about the sandbox itself, as containerd does) with the
// current pod sandbox status and the statuses of all the pod's containers:
// kubelet's evented PLEG builds the pod's status from the event alone.
func (s *Service) emit(containerID, sandboxID string, typ runtime.ContainerEventType) {
	var st *runtime.PodSandboxStatus
	if sb, err := s.sandboxes.Get(sandboxID); err == nil {
		st = s.sandboxStatus(sb)
	}
	s.publishEvent(containerID, sandboxID, typ, st)
}

// publishEvent publishes an event with sandbox status st (the last known
// one for a sandbox that was just removed: kubelet drops events without
// it).
func (s *Service) publishEvent(containerID, sandboxID string, typ runtime.ContainerEventType, st *runtime.PodSandboxStatus) {
	ev := &runtime.ContainerEventResponse{
		ContainerId:        containerID,
		ContainerEventType: typ,
		CreatedAt:          time.Now().UnixNano(),
		PodSandboxStatus:   st,
	}
	for _, c := range s.podContainers(sandboxID) {
		ev.ContainersStatuses = append(ev.ContainersStatuses, s.containerStatus(c))
	}
	s.events.publish(ev)
}

// GetContainerEvents streams container events until the client goes away
// or falls too far behind.
func (s *Service) GetContainerEvents(_ *runtime.GetEventsRequest, stream grpc.ServerStreamingServer[runtime.ContainerEventResponse]) error {
	ch, cancel := s.events.subscribe()
	defer cancel()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case ev, ok := <-ch:
			if !ok {
				return fmt.Errorf("container event stream ended (subscriber too slow or service stopping): %w", errdefs.ErrUnavailable)
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}
