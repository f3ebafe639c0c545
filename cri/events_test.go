package cri

import (
	"context"
	"slices"
	"testing"
	"time"

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

// TestEventsCarryThePod: events carry the pod's status and every one of its
// containers' statuses (kubelet's evented PLEG reads the pod from them),
// and the sandbox's own lifecycle is reported under its ID, the deletion
// with its last status.
func TestEventsCarryThePod(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	events, cancel := e.s.events.subscribe()
	defer cancel()
	pod := e.runPod("p")
	a := e.createCtr(pod, "a")
	b := e.createCtr(pod, "b")
	e.s.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: b})
	e.s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod})
	e.s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod})

	type ev struct {
		id  string
		typ runtime.ContainerEventType
	}
	var got []ev
	timeout := time.After(2 * time.Second)
	for len(got) == 0 || got[len(got)-1] != (ev{pod, runtime.ContainerEventType_CONTAINER_DELETED_EVENT}) {
		select {
		case r := <-events:
			got = append(got, ev{r.ContainerId, r.ContainerEventType})
			if r.PodSandboxStatus.GetMetadata().GetUid() != "uid-p" {
				t.Fatalf("event %v %s without the pod's status", r.ContainerEventType, r.ContainerId)
			}
			if r.ContainerId == b && r.ContainerEventType == runtime.ContainerEventType_CONTAINER_STARTED_EVENT {
				ids := map[string]runtime.ContainerState{}
				for _, cs := range r.ContainersStatuses {
					ids[cs.Id] = cs.State
				}
				if len(ids) != 2 || ids[a] != runtime.ContainerState_CONTAINER_CREATED || ids[b] != runtime.ContainerState_CONTAINER_RUNNING {
					t.Fatalf("container statuses in STARTED event: %v", ids)
				}
			}
		case <-timeout:
			t.Fatalf("events so far: %v", got)
		}
	}
	has := func(w ev) bool { return slices.Contains(got, w) }
	for _, w := range []ev{
		{pod, runtime.ContainerEventType_CONTAINER_CREATED_EVENT},
		{pod, runtime.ContainerEventType_CONTAINER_STARTED_EVENT},
		{a, runtime.ContainerEventType_CONTAINER_CREATED_EVENT},
		{b, runtime.ContainerEventType_CONTAINER_STARTED_EVENT},
		{b, runtime.ContainerEventType_CONTAINER_STOPPED_EVENT},
		{pod, runtime.ContainerEventType_CONTAINER_STOPPED_EVENT},
		{a, runtime.ContainerEventType_CONTAINER_DELETED_EVENT},
		{b, runtime.ContainerEventType_CONTAINER_DELETED_EVENT},
	} {
		if !has(w) {
			t.Errorf("no %v for %s in %v", w.typ, w.id[:8], got)
		}
	}
}
