package network

// Status is the CRI NetworkReady condition.
type Status struct {
	Ready bool
	// Reason and Message explain a network that is not ready.
	Reason  string
	Message string
	// Network and ConfFile name the network pods join when ready.
	Network  string
	ConfFile string
}

// ReasonNotReady is the condition reason kubelet shows, as containerd's.
const ReasonNotReady = "NetworkPluginNotReady"

// Status reports whether a pod could join a network now: a config file
// parses and every plugin it names is in a bin dir.
func (m *Manager) Status() Status {
	net, err := m.network()
	if err != nil {
		return Status{Reason: ReasonNotReady, Message: err.Error()}
	}
	return Status{Ready: true, Network: net.List.Name, ConfFile: net.File}
}

func (m *Manager) network() (*network, error) {
	net, err := loadNetwork(m.cfg.ConfDir)
	if err != nil {
		return nil, err
	}
	if err := checkBinaries(net.List, m.cfg.BinDirs); err != nil {
		return nil, err
	}
	return net, nil
}
