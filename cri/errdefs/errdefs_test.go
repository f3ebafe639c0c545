package errdefs

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestToGRPC(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("sandbox %q: %w", "x", ErrNotFound), codes.NotFound},
		{fmt.Errorf("name: %w", ErrAlreadyExists), codes.AlreadyExists},
		{fmt.Errorf("metadata.name: %w", ErrInvalidArgument), codes.InvalidArgument},
		{fmt.Errorf("not running: %w", ErrFailedPrecondition), codes.FailedPrecondition},
		{fmt.Errorf("rate: %w", ErrResourceExhausted), codes.ResourceExhausted},
		{fmt.Errorf("checkpoint: %w", ErrUnimplemented), codes.Unimplemented},
		{fmt.Errorf("agent: %w", ErrUnavailable), codes.Unavailable},
		{fmt.Errorf("pull: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{errors.New("boom"), codes.Unknown},
		{status.Error(codes.Aborted, "x"), codes.Aborted},
		{fmt.Errorf("wrapped: %w", status.Error(codes.NotFound, "x")), codes.NotFound},
	} {
		got := ToGRPC(tc.err)
		s, _ := status.FromError(got)
		if s.Code() != tc.want {
			t.Errorf("ToGRPC(%v) code = %v, want %v", tc.err, s.Code(), tc.want)
		}
		if s.Message() != tc.err.Error() && tc.want != codes.Aborted {
			t.Errorf("message %q, want %q", s.Message(), tc.err.Error())
		}
	}
	if ToGRPC(nil) != nil {
		t.Error("ToGRPC(nil) != nil")
	}
}
