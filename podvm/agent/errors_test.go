package agent

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestToStatus(t *testing.T) {
	tests := []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("x: %w", ErrInvalidArgument), codes.InvalidArgument},
		{fmt.Errorf("x: %w", ErrNotFound), codes.NotFound},
		{fmt.Errorf("x: %w", ErrAlreadyExists), codes.AlreadyExists},
		{fmt.Errorf("x: %w", ErrFailedPrecondition), codes.FailedPrecondition},
		{fmt.Errorf("x: %w", ErrResourceExhausted), codes.ResourceExhausted},
		{fmt.Errorf("x: %w", context.Canceled), codes.Canceled},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{errors.New("boom"), codes.Internal},
		{status.Error(codes.Unavailable, "u"), codes.Unavailable},
	}
	for _, tt := range tests {
		if got := status.Code(toStatus(tt.err)); got != tt.code {
			t.Errorf("toStatus(%v) code %v, want %v", tt.err, got, tt.code)
		}
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) != nil")
	}
}
