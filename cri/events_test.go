package cri

import (
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestBroadcasterDropsSlowSubscriber(t *testing.T) {
	b := newBroadcaster(2)
	fast, cancelFast := b.subscribe()
	defer cancelFast()
	slow, cancelSlow := b.subscribe()
	defer cancelSlow()
	for i := range 3 {
		b.publish(&runtime.ContainerEventResponse{ContainerId: string(rune('a' + i))})
		if i < 2 {
			<-fast
		}
	}
	<-fast
	n := 0
	for range slow { // closed after its buffer of 2 overflowed
		n++
	}
	if n != 2 {
		t.Fatalf("slow subscriber got %d events before being dropped, want 2", n)
	}
	b.publish(&runtime.ContainerEventResponse{})
	if ev := <-fast; ev == nil {
		t.Fatal("fast subscriber dropped")
	}
	b.close()
	if _, ok := <-fast; ok {
		t.Fatal("channel open after close")
	}
	ch, _ := b.subscribe()
	if _, ok := <-ch; ok {
		t.Fatal("subscribe after close must return a closed channel")
	}
}
