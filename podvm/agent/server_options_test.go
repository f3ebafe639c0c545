package agent

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

func TestRecoverUnary(t *testing.T) {
	info := &grpc.UnaryServerInfo{FullMethod: "/x/Y"}
	_, err := recoverUnary(context.Background(), nil, info, func(context.Context, any) (any, error) {
		panic("boom")
	})
	if status.Code(err) != codes.Internal {
		t.Errorf("err = %v, want Internal", err)
	}
}

func TestOversizeRequestRefused(t *testing.T) {
	f := newFixture(t)
	req := &agentpb.StartProcessRequest{Id: "huge", Args: []string{"x", strings.Repeat("a", MaxRecvMsgSize)}}
	_, err := f.client.StartProcess(ctxFor(t), req)
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("err = %v, want ResourceExhausted", err)
	}
}
