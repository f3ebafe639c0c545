package agent

import (
	"context"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// Message size limits. The largest legitimate request, StartProcess, is
// bounded by validation at about 2 MiB of arguments and environment; the
// largest reply, InspectProcess, by 1 MiB of arguments.
const (
	MaxRecvMsgSize = 4 << 20
	MaxSendMsgSize = 4 << 20
)

// ServerOptions returns the options for the agent's gRPC server: message
// size caps, keepalive, a stream limit that leaves room for one WaitProcess
// per process, and interceptors that log requests (never their payloads) and
// turn a panic in a handler into an error instead of a kernel panic (the
// agent is PID 1).
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxRecvMsgSize),
		grpc.MaxSendMsgSize(MaxSendMsgSize),
		grpc.MaxConcurrentStreams(2 * DefaultMaxProcesses),
		grpc.MaxHeaderListSize(16 << 10),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    30 * time.Second,
			Timeout: 10 * time.Second,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             10 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.ChainUnaryInterceptor(recoverUnary, logUnary),
	}
}

// logUnary logs failures the agent itself is responsible for at the default
// verbosity, refused requests at V(2) and every call at V(4); never payloads.
func logUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	code := status.Code(err)
	switch {
	case code == codes.Internal || code == codes.Unknown:
		klog.ErrorS(err, "Agent RPC failed", "method", info.FullMethod)
	case klog.V(4).Enabled() || (err != nil && klog.V(2).Enabled()):
		klog.InfoS("Agent RPC", "method", info.FullMethod, "code", code.String(), "duration", time.Since(start))
	}
	return resp, err
}

func recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			klog.ErrorS(nil, "Panic in agent RPC", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "%s: internal error", info.FullMethod)
		}
	}()
	return handler(ctx, req)
}
