package cri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/cri/errdefs"
)

// requestIDHeader carries a request ID in and out.
const requestIDHeader = "x-request-id"

type requestIDKey struct{}

// RequestID returns the request ID the interceptor put in ctx.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Interceptors is the cross-cutting layer: request IDs, rate limiting,
// logging, auditing and the one conversion of error kinds to gRPC codes.
type Interceptors struct {
	limiter *rate.Limiter // nil: no limit
	audit   *AuditLog     // nil: no audit log
}

// NewInterceptors builds the layer; rps <= 0 disables rate limiting.
func NewInterceptors(rps float64, burst int, audit *AuditLog) *Interceptors {
	i := &Interceptors{audit: audit}
	if rps > 0 {
		i.limiter = rate.NewLimiter(rate.Limit(rps), burst)
	}
	return i
}

// ServerOptions returns the gRPC options installing the interceptors.
func (i *Interceptors) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(i.unary),
		grpc.ChainStreamInterceptor(i.stream),
	}
}

func (i *Interceptors) begin(ctx context.Context, method string) (context.Context, string, error) {
	id := ""
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(requestIDHeader); len(v) > 0 && len(v[0]) <= 64 {
			id = v[0]
		}
	}
	if id == "" {
		var b [8]byte
		rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	ctx = context.WithValue(ctx, requestIDKey{}, id)
	grpc.SetHeader(ctx, metadata.Pairs(requestIDHeader, id))
	if i.limiter != nil && !i.limiter.Allow() {
		return ctx, id, fmt.Errorf("%s: request rate limit exceeded: %w", methodName(method), errdefs.ErrResourceExhausted)
	}
	return ctx, id, nil
}

func (i *Interceptors) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	ctx, id, err := i.begin(ctx, info.FullMethod)
	var resp any
	if err == nil {
		name := methodName(info.FullMethod)
		if mutatingMethods[name] {
			klog.InfoS("CRI request", "method", name, "requestID", id)
		}
		klog.V(4).InfoS("CRI request payload", "method", name, "requestID", id, "request", req)
		resp, err = handler(ctx, req)
	}
	err = errdefs.ToGRPC(err)
	i.finish(info.FullMethod, id, req, resp, err, start)
	return resp, err
}

func (i *Interceptors) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	ctx, id, err := i.begin(ss.Context(), info.FullMethod)
	if err == nil {
		klog.V(2).InfoS("CRI stream", "method", methodName(info.FullMethod), "requestID", id)
		err = handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
	}
	err = errdefs.ToGRPC(err)
	i.finish(info.FullMethod, id, nil, nil, err, start)
	return err
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

// finish logs the outcome and writes the audit record.
func (i *Interceptors) finish(method, id string, req, resp any, err error, start time.Time) {
	name := methodName(method)
	code := status.Code(err)
	d := time.Since(start)
	switch {
	case err != nil:
		klog.InfoS("CRI request failed", "method", name, "requestID", id, "code", code, "err", err, "duration", d)
	case mutatingMethods[name]:
		klog.InfoS("CRI request done", "method", name, "requestID", id, "duration", d)
		klog.V(4).InfoS("CRI response payload", "method", name, "requestID", id, "response", resp)
	default:
		klog.V(5).InfoS("CRI request done", "method", name, "requestID", id, "duration", d, "response", resp)
	}
	if i.audit == nil || !mutatingMethods[name] {
		return
	}
	rec := AuditRecord{Time: start.UTC(), Method: name, RequestID: id, Code: code.String(), DurationMS: d.Milliseconds()}
	auditIDs(&rec, req)
	auditIDs(&rec, resp)
	if aerr := i.audit.Record(rec); aerr != nil {
		klog.ErrorS(aerr, "Writing audit record", "method", name, "requestID", id)
	}
}

// auditIDs copies the object IDs a request or response names.
func auditIDs(rec *AuditRecord, m any) {
	if v, ok := m.(interface{ GetPodSandboxId() string }); ok && v.GetPodSandboxId() != "" {
		rec.PodSandboxID = v.GetPodSandboxId()
	}
	if v, ok := m.(interface{ GetContainerId() string }); ok && v.GetContainerId() != "" {
		rec.ContainerID = v.GetContainerId()
	}
	if v, ok := m.(interface{ GetImage() *runtime.ImageSpec }); ok && v.GetImage().GetImage() != "" {
		rec.Image = v.GetImage().GetImage()
	}
	if v, ok := m.(interface{ GetImageRef() string }); ok && v.GetImageRef() != "" && rec.Image == "" {
		rec.Image = v.GetImageRef()
	}
}
