package podvm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/podvm/agent/agentpb"
	"github.com/podvisor/podvisor/podvm/channel"
)

// Limits on what the host accepts from a guest: every byte from the guest is
// hostile input.
const (
	maxAgentMsg     = 4 << 20
	agentRetryDelay = 100 * time.Millisecond
)

// agentConn is an authenticated session to one guest agent.
type agentConn struct {
	session *channel.HostSession
	conn    *grpc.ClientConn
	client  agentpb.AgentClient
}

// dialAgent connects to the agent of vm, retrying while the guest boots,
// until ctx ends. A guest that fails authentication is refused at once.
func dialAgent(ctx context.Context, vm hypervisor.VM, self channel.Identity, guestCert []byte) (*agentConn, error) {
	var lastErr error
	for {
		a, err := tryAgent(ctx, vm, self, guestCert)
		if err == nil {
			return a, nil
		}
		if errors.Is(err, channel.ErrAuth) {
			return nil, err
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("agent not ready: %w (last error: %v)", ctx.Err(), lastErr)
		case <-vm.Done():
			return nil, fmt.Errorf("%w: VMM exited while waiting for the agent: %v", ErrGone, vm.Err())
		case <-time.After(agentRetryDelay):
		}
	}
}

func tryAgent(ctx context.Context, vm hypervisor.VM, self channel.Identity, guestCert []byte) (*agentConn, error) {
	raw, err := vm.DialAgent(ctx)
	if err != nil {
		return nil, err
	}
	// The handshake waits for the guest to open its end; bound each try so
	// that a VMM death is noticed between tries.
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	go func() {
		select {
		case <-vm.Done():
			raw.Close()
		case <-hctx.Done():
		}
	}()
	s, err := channel.Connect(hctx, raw, self, guestCert, channel.Options{HandshakeTimeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("passthrough:///agent",
		grpc.WithContextDialer(s.DialControl),
		// The stream is already inside the mutually authenticated TLS
		// session; gRPC adds no second layer.
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxAgentMsg), grpc.MaxCallSendMsgSize(maxAgentMsg)),
	)
	if err != nil {
		s.Close()
		return nil, err
	}
	a := &agentConn{session: s, conn: conn, client: agentpb.NewAgentClient(conn)}
	// The first RPC proves the agent serves requests, not just TLS.
	if _, err := a.client.GuestInfo(hctx, &agentpb.Empty{}); err != nil {
		a.Close()
		return nil, fmt.Errorf("agent GuestInfo: %w", err)
	}
	return a, nil
}

func (a *agentConn) Close() error {
	err := a.conn.Close()
	return errors.Join(err, a.session.Close())
}

// saveHostKeys persists the host's identity and the guest's pinned
// certificate so that a restarted daemon can reconnect to the VM.
func saveHostKeys(dir string, host channel.Identity, guestCert []byte) error {
	certPEM, keyPEM, err := host.MarshalPEM()
	if err != nil {
		return err
	}
	guestPEM := channel.CertPEM(guestCert)
	for name, data := range map[string][]byte{"host.crt": certPEM, "host.key": keyPEM, "guest.crt": guestPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return fmt.Errorf("save %s: %w", name, err)
		}
	}
	return nil
}

// loadHostKeys is the inverse of saveHostKeys.
func loadHostKeys(dir string) (channel.Identity, []byte, error) {
	read := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }
	certPEM, err := read("host.crt")
	if err != nil {
		return channel.Identity{}, nil, err
	}
	keyPEM, err := read("host.key")
	if err != nil {
		return channel.Identity{}, nil, err
	}
	guestPEM, err := read("guest.crt")
	if err != nil {
		return channel.Identity{}, nil, err
	}
	id, err := channel.ParseIdentityPEM(certPEM, keyPEM)
	if err != nil {
		return channel.Identity{}, nil, err
	}
	guestDER, err := channel.ParseCertPEM(guestPEM)
	return id, guestDER, err
}
