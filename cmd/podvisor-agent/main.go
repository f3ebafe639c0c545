// Command podvisor-agent is PID 1 of every pod VM. It takes its per-VM keys
// out of the initramfs before anything else runs, moves itself off the
// initramfs onto a tmpfs root (re-executing itself there, so that runc can
// pivot_root containers), prepares the guest, then
// serves the host over the authenticated guest channel, one session at a
// time, for as long as the VM lives: a host that restarts reconnects to the
// same agent and finds its processes still there.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/podvm/agent"
	"github.com/podvisor/podvisor/podvm/agent/agentpb"
	"github.com/podvisor/podvisor/podvm/agent/initsys"
	"github.com/podvisor/podvisor/podvm/agent/reaper"
	"github.com/podvisor/podvisor/podvm/channel"
)

// version is set at link time.
var version = "dev"

// Where the host puts this VM's keys in the initramfs overlay, and where the
// shared directory is mounted (both fixed by the host's podvm package).
const (
	keyDir    = "/.podvisor/keys"
	sharedDir = "/run/podvisor/shared"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == agent.PauseArg && os.Getpid() == 1 {
		// Re-executed by the agent as PID 1 of a pod's shared PID namespace.
		agent.RunPause()
		return
	}
	if _, reexecuted := os.LookupEnv(initsys.HandoffEnv); !reexecuted {
		// First line on the console: boot benchmarks time the guest up
		// to here. Printed once, not again after the switch_root re-exec.
		fmt.Println("podvisor-agent: init")
	}
	if err := run(); err != nil {
		klog.ErrorS(err, "Agent failed")
		klog.Flush()
		if os.Getpid() == 1 {
			// PID 1 must not exit (the kernel would panic with no message
			// the host can read); power off so the VMM exits.
			initsys.PowerOff()
		}
		os.Exit(1)
	}
}

func run() error {
	// The keys come from the initramfs on a fresh start, or from the
	// agent that switched root and re-executed this one.
	files, reexecuted, err := initsys.TakeHandoff()
	if err != nil {
		return fmt.Errorf("read keys: %w", err)
	}
	if !reexecuted {
		if files, err = initsys.ReadAndRemoveSecrets(keyDir); err != nil {
			return fmt.Errorf("read keys: %w", err)
		}
		if err := switchRoot(files); err != nil {
			return err
		}
	}
	keys, err := parseKeys(files)
	if err != nil {
		return err
	}
	if err := initsys.Setup(initsys.Options{}); err != nil {
		return err
	}
	cmdline, err := initsys.ReadCmdline()
	if err != nil {
		return err
	}
	if err := initsys.SetupConsole(); err != nil {
		klog.ErrorS(err, "Console setup failed")
	}
	if tag := cmdline["shared"]; tag != "" {
		if err := initsys.MountShared(tag, sharedDir); err != nil {
			return err
		}
	}

	if err := prepareContainers(); err != nil {
		return err
	}

	rp, err := reaper.New()
	if err != nil {
		return err
	}
	go rp.Run(context.Background())

	broker := &sessionBroker{}
	svc, err := agent.New(agent.Config{
		Reaper:   rp,
		Broker:   broker,
		PowerOff: initsys.PowerOff,
		Version:  version,
	})
	if err != nil {
		return err
	}
	tr, err := findTransport()
	if err != nil {
		return err
	}
	klog.InfoS("Agent serving", "transport", tr.String(), "version", version)
	for {
		if err := serveSession(tr, keys, broker, svc); err != nil && !errors.Is(err, io.EOF) {
			klog.InfoS("Host session ended", "err", err)
		}
		// A host that is not there yet, or gave up, is retried calmly.
		time.Sleep(100 * time.Millisecond)
	}
}

// prepareContainers readies the guest for runc: the cgroup v2 controllers
// container limits need, under agent.CgroupParent, and the runtime's
// directories on the /run tmpfs (runc's state root included, so that no
// container state survives in anything but memory).
func prepareContainers() error {
	if err := initsys.EnableCgroupControllers(agent.DefaultCgroupRoot, agent.CgroupParent); err != nil {
		return err
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{agent.DefaultRuncRoot, 0o700},
		{agent.DefaultRunDir + "/bundles", 0o700},
		// Containers bind-mount files from here; runc reads them as root,
		// but the files must be readable by any container user.
		{agent.DefaultRunDir + "/net", 0o755},
	} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return fmt.Errorf("prepare containers: %w", err)
		}
	}
	return nil
}

type agentKeys struct {
	self     channel.Identity
	hostCert []byte
}

// parseKeys parses the VM's key files.
func parseKeys(files map[string][]byte) (agentKeys, error) {
	self, err := channel.ParseIdentityPEM(files["agent.crt"], files["agent.key"])
	if err != nil {
		return agentKeys{}, fmt.Errorf("agent identity: %w", err)
	}
	host, err := channel.ParseCertPEM(files["host.crt"])
	if err != nil {
		return agentKeys{}, fmt.Errorf("host certificate: %w", err)
	}
	return agentKeys{self: self, hostCert: host}, nil
}

// switchRoot moves the agent off the initramfs, if / is one, and
// re-executes it, handing it keys in a sealed memfd; it returns only if /
// needs no switch, or on failure. runc cannot pivot_root a container's
// root while / is the initramfs, and without pivot_root the guest's root
// and mounts stay in every container's mount namespace, under its root,
// where a privileged container can reach them.
//
// The keys are read and deleted before the switch rather than left out of
// the copy and read after it: that keeps them out of every file tree from
// the agent's first step on, the copy cannot take them along by mistake,
// and no descriptor to the old root has to survive the re-exec.
func switchRoot(keys map[string][]byte) error {
	initramfs, err := initsys.RootIsInitramfs()
	if err != nil || !initramfs {
		return err
	}
	if err := initsys.SwitchRoot(); err != nil {
		return err
	}
	return initsys.Reexec(keys)
}

// serveSession authenticates one host connection and serves it until it
// ends.
func serveSession(tr transport, keys agentKeys, broker *sessionBroker, svc *agent.Service) error {
	ctx := context.Background()
	raw, err := tr.Next(ctx)
	if err != nil {
		return err
	}
	sess, err := channel.Accept(ctx, raw, keys.self, keys.hostCert, channel.Options{DialPort: dialGuestPort})
	if err != nil {
		return err
	}
	defer sess.Close()
	klog.V(2).InfoS("Host session established")
	broker.set(sess)
	defer broker.set(nil)

	srv := grpc.NewServer(agent.ServerOptions()...)
	agentpb.RegisterAgentServer(srv, svc)
	lis := sess.Listener()
	go func() {
		<-sess.Done()
		srv.Stop()
	}()
	return srv.Serve(lis)
}

// sessionBroker hands the service the stdio streams of whichever host
// session is current; processes outlive sessions.
type sessionBroker struct {
	cur atomic.Pointer[channel.GuestSession]
}

func (b *sessionBroker) set(s *channel.GuestSession) { b.cur.Store(s) }

func (b *sessionBroker) Take(ctx context.Context, id string, kind agent.StreamKind) (io.ReadWriteCloser, error) {
	sess := b.cur.Load()
	if sess == nil {
		return nil, fmt.Errorf("%s stream of %q: no host session", kind, id)
	}
	var k channel.StreamKind
	switch kind {
	case agent.StreamStdin:
		k = channel.KindStdin
	case agent.StreamStdout:
		k = channel.KindStdout
	case agent.StreamStderr:
		k = channel.KindStderr
	default:
		return nil, fmt.Errorf("unknown stream kind %v", kind)
	}
	st, err := sess.Take(ctx, id, k)
	if err != nil {
		return nil, err
	}
	return sessionStream{Stream: st, sess: sess}, nil
}

// errSessionEnded is what a stdio stream reads once its host session ended.
var errSessionEnded = errors.New("host session ended")

// sessionStream is a stdio stream of one host session. yamux ends every
// stream of a session that ends with io.EOF, the same as a host's
// half-close; the service must tell the two apart (a half-closed stdin
// closes the process's stdin, a lost host does not), so Read reports the
// end of the session as errSessionEnded.
//
// A half-close that arrives just before the session ends may be taken for
// its end: the process then keeps its stdin open until the next host
// attaches and ends it.
type sessionStream struct {
	channel.Stream
	sess *channel.GuestSession
}

func (s sessionStream) Read(b []byte) (int, error) {
	n, err := s.Stream.Read(b)
	if errors.Is(err, io.EOF) {
		select {
		case <-s.sess.Done():
			return n, errSessionEnded
		default:
		}
	}
	return n, err
}

// dialGuestPort connects a port-forward stream to a port on the guest's
// loopback, IPv4 first, then IPv6, as kubelet's port-forward does.
func dialGuestPort(ctx context.Context, port uint16) (net.Conn, error) {
	var d net.Dialer
	p := strconv.Itoa(int(port))
	c, err := d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", p))
	if err == nil {
		return c, nil
	}
	if c6, err6 := d.DialContext(ctx, "tcp6", net.JoinHostPort("::1", p)); err6 == nil {
		return c6, nil
	}
	return nil, err
}
