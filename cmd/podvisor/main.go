// Command podvisor is the podvisor daemon: a Kubernetes CRI runtime that runs
// every pod in its own virtual machine.
//
//	podvisor [--address SOCKET] [--root DIR] [--state DIR] [--config FILE] [klog flags]
//	podvisor config default    print every configuration key with its default
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/cri"
)

// Options are the daemon's command-line options.
type Options struct {
	Address    string
	Root       string
	State      string
	ConfigPath string
	// GuestDir overrides podvm.guest_dir (the Makefile's 'make run').
	GuestDir string
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "podvisor:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("podvisor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	fs.StringVar(&o.Address, "address", "/run/podvisor/podvisor.sock", "CRI unix socket")
	fs.StringVar(&o.Root, "root", "/var/lib/podvisor", "persistent state directory")
	fs.StringVar(&o.State, "state", "/run/podvisor", "runtime state directory")
	fs.StringVar(&o.ConfigPath, "config", "", "TOML configuration file (see 'podvisor config default')")
	fs.StringVar(&o.GuestDir, "guest-dir", "", "guest image directory (overrides podvm.guest_dir)")
	klog.InitFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch rest := fs.Args(); {
	case len(rest) == 2 && rest[0] == "config" && rest[1] == "default":
		return printDefaultConfig(stdout)
	case len(rest) > 0:
		return fmt.Errorf("unknown command %q (commands: 'config default')", rest)
	}
	cfg, err := loadConfig(o.ConfigPath, o.GuestDir)
	if err != nil {
		return err
	}
	for _, d := range []struct{ flag, v string }{{"--root", o.Root}, {"--state", o.State}, {"--address", o.Address}} {
		if !filepath.IsAbs(d.v) {
			return fmt.Errorf("%s %q must be an absolute path", d.flag, d.v)
		}
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return serve(ctx, o, cfg)
}

// serve wires the backends, starts the CRI server and blocks until ctx
// ends. Pod VMs keep running when it returns.
func serve(ctx context.Context, o Options, cfg cri.Config) (retErr error) {
	if err := os.MkdirAll(o.Root, 0o700); err != nil {
		return err
	}
	b, closeBackends, err := wireBackends(ctx, o, cfg)
	if err != nil {
		return fmt.Errorf("wire backends: %w", err)
	}
	defer closeBackends()
	svc, err := cri.New(ctx, cfg, cri.Paths{Root: o.Root, State: o.State}, b)
	if err != nil {
		return err
	}
	defer svc.Close()
	// An image a container was created from cannot be removed.
	if ia, ok := b.Images.(imageAdapter); ok {
		ia.s.SetInUseFunc(svc.ImageInUse)
	}
	stopStreams, err := wireStreaming(svc, cfg)
	if err != nil {
		return fmt.Errorf("streaming server: %w", err)
	}
	defer stopStreams()
	audit, err := cri.OpenAuditLog(filepath.Join(o.Root, "audit.log"))
	if err != nil {
		return err
	}
	defer audit.Close()
	srv := cri.NewGRPCServer(svc, cri.NewInterceptors(cfg.RateLimit.RequestsPerSecond, cfg.RateLimit.Burst, audit))
	l, err := cri.ListenUnix(o.Address)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.Address, err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	klog.InfoS("podvisor serving CRI", "address", o.Address, "version", cri.RuntimeVersion)
	select {
	case <-ctx.Done():
		klog.InfoS("Shutting down; pod VMs keep running")
		stopGRPC(srv, shutdownGrace)
		return nil
	case err := <-errc:
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
}

// shutdownGrace bounds how long shutdown waits for RPCs in flight. Streams
// that never end by themselves (kubelet's GetContainerEvents, an attach)
// would otherwise hold the daemon forever.
const shutdownGrace = 10 * time.Second

// stopGRPC stops srv gracefully, then forcibly once grace has passed.
func stopGRPC(srv *grpc.Server, grace time.Duration) {
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		klog.InfoS("RPCs still running after the shutdown grace period; closing them", "grace", grace)
		srv.Stop()
		<-done
	}
}
