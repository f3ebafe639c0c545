package cri

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// MaxMsgSize bounds CRI messages both ways (ExecSync output, big lists).
const MaxMsgSize = 16 << 20

// NewGRPCServer returns a gRPC server serving s's RuntimeService and
// ImageService through the interceptors.
func NewGRPCServer(s *Service, ic *Interceptors) *grpc.Server {
	opts := append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMsgSize),
		grpc.MaxSendMsgSize(MaxMsgSize),
	}, ic.ServerOptions()...)
	srv := grpc.NewServer(opts...)
	runtime.RegisterRuntimeServiceServer(srv, s)
	runtime.RegisterImageServiceServer(srv, s.ImageService())
	return srv
}

// ListenUnix listens on a unix socket with mode 0600 in a 0700 directory,
// replacing a stale socket file but nothing else.
func ListenUnix(path string) (net.Listener, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("socket path %q is not absolute", path)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}
