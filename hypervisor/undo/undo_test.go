package undo

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestRunReverseOrderAndErrors(t *testing.T) {
	var s Stack
	var order []string
	boom := errors.New("boom")
	for _, name := range []string{"a", "b", "c"} {
		name := name
		s.Push(name, func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				t.Errorf("step %s ran without a deadline", name)
			}
			order = append(order, name)
			if name == "b" {
				return boom
			}
			return nil
		})
	}
	err := s.Run(time.Second, "vm", "x")
	if !reflect.DeepEqual(order, []string{"c", "b", "a"}) {
		t.Fatalf("order %v", order)
	}
	if !errors.Is(err, boom) {
		t.Fatalf("err %v does not carry the failing step's error", err)
	}
	order = nil
	if err := s.Run(time.Second); err != nil || order != nil {
		t.Fatal("a second Run repeated the steps")
	}
}
