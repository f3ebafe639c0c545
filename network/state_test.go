package network

import (
	"errors"
	"os"
	"reflect"
	"testing"
)

func TestRecordStore(t *testing.T) {
	s := recordStore{dir: t.TempDir()}
	if _, err := s.get("pod1"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("get(absent) = %v, want ErrNotExist", err)
	}
	rec := podRecord{
		Request:  PodRequest{ID: "pod1", Name: "n", Namespace: "ns", UID: "u", PortMappings: []PortMapping{{ContainerPort: 80, HostPort: 80}}},
		NetNS:    "/state/netns/pod1",
		IfName:   "eth0",
		ConfFile: "/etc/cni/net.d/10.conflist",
		ConfList: []byte(`{"name":"a","plugins":[{"type":"bridge"}]}`),
	}
	if err := s.put(rec); err != nil {
		t.Fatal(err)
	}
	got, err := s.get("pod1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rec) {
		t.Errorf("get() = %+v, want %+v", got, rec)
	}
	ids, err := s.list()
	if err != nil || !reflect.DeepEqual(ids, []string{"pod1"}) {
		t.Errorf("list() = %v, %v", ids, err)
	}
	for range 2 { // removal is idempotent
		if err := s.remove("pod1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.get("pod1"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("get(removed) = %v", err)
	}
}
