package agent

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
	"github.com/podvisor/podvisor/podvm/agent/reaper"
)

// Defaults for Config.
const (
	DefaultStdioTimeout = 5 * time.Second
	DefaultMaxProcesses = 1024
)

// Config configures a Service.
type Config struct {
	// Reaper collects the exit statuses of the processes; required, and the
	// only reaper of the agent process.
	Reaper *reaper.Reaper
	// Broker hands out the stdio streams the host opened; required.
	Broker StdioBroker
	// PowerOff is called after Shutdown has replied; required. In the guest
	// it is initsys.PowerOff.
	PowerOff func() error
	// Version is reported by GuestInfo.
	Version string
	// DefaultPath is searched for an executable named without a slash when
	// the process's environment has no PATH; DefaultPath when empty.
	DefaultPath string
	// StdioTimeout bounds the wait for a process's stdio streams;
	// DefaultStdioTimeout when zero.
	StdioTimeout time.Duration
	// MaxProcesses bounds the processes started and not yet removed;
	// DefaultMaxProcesses when zero.
	MaxProcesses int
	// Containers configures the container runtime; zero fields take the
	// guest's defaults (see ContainerConfig).
	Containers ContainerConfig
}

// Service implements agentpb.AgentServer.
type Service struct {
	agentpb.UnimplementedAgentServer

	cfg        Config
	procs      *table
	containers *containerTable
	// netMu serializes ConfigureNetwork calls: two interleaved ones would
	// mix their settings.
	netMu sync.Mutex

	shuttingDown atomic.Bool
	shutdownOnce sync.Once

	// pidns is the holder of the pod's shared PID namespace, once started.
	pidnsMu sync.Mutex
	pidns   *podPIDNS
}

var _ agentpb.AgentServer = (*Service)(nil)

// New returns a Service. Register it with agentpb.RegisterAgentServer on a
// server built with ServerOptions.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Reaper == nil:
		return nil, errors.New("agent: Config.Reaper is required")
	case cfg.Broker == nil:
		return nil, errors.New("agent: Config.Broker is required")
	case cfg.PowerOff == nil:
		return nil, errors.New("agent: Config.PowerOff is required")
	case cfg.MaxProcesses < 0 || cfg.StdioTimeout < 0:
		return nil, errors.New("agent: negative Config.MaxProcesses or Config.StdioTimeout")
	}
	if cfg.DefaultPath == "" {
		cfg.DefaultPath = DefaultPath
	}
	if cfg.StdioTimeout == 0 {
		cfg.StdioTimeout = DefaultStdioTimeout
	}
	if cfg.MaxProcesses == 0 {
		cfg.MaxProcesses = DefaultMaxProcesses
	}
	cfg.Containers = cfg.Containers.withDefaults()
	return &Service{cfg: cfg, procs: newTable(cfg.MaxProcesses), containers: newContainerTable()}, nil
}
