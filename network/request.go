package network

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// PodRequest is what Setup needs to know about a pod sandbox. Its fields
// come from the CRI PodSandboxConfig.
type PodRequest struct {
	// ID is the pod sandbox ID; it names the netns, state and cache files.
	ID        string `json:"id"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	UID       string `json:"uid"`
	// PortMappings are passed to plugins with the portMappings capability
	// (portmap); mappings without a host port are skipped, as kubelet
	// expects.
	PortMappings []PortMapping `json:"portMappings,omitempty"`
	// DNS, when set, is the pod's DNS config: it is passed to plugins with
	// the dns capability and takes precedence over the DNS of the CNI
	// result in the GuestConfig.
	DNS *DNS `json:"dns,omitempty"`
	// Hostname is the guest hostname.
	Hostname string `json:"hostname,omitempty"`
}

// PortMapping is a CRI PortMapping.
type PortMapping struct {
	// Protocol is TCP, UDP or SCTP (CRI enum names); empty means TCP.
	Protocol      string `json:"protocol,omitempty"`
	ContainerPort int32  `json:"containerPort"`
	HostPort      int32  `json:"hostPort,omitempty"`
	HostIP        string `json:"hostIP,omitempty"`
}

// podIDPattern keeps sandbox IDs usable as file names: CRI IDs are 64 hex
// digits, crictl and tests use shorter names.
var podIDPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

func validatePodID(id string) error {
	if !podIDPattern.MatchString(id) {
		return fmt.Errorf("pod sandbox ID %q must match %s: %w", id, podIDPattern, ErrInvalidArgument)
	}
	return nil
}

// validate checks r before any side effect. Name, namespace and UID end up
// in CNI_ARGS, whose "K=V;K=V" syntax has no escaping.
func (r PodRequest) validate() error {
	if err := validatePodID(r.ID); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"name", r.Name}, {"namespace", r.Namespace}, {"uid", r.UID}} {
		if f.v == "" || strings.ContainsAny(f.v, ";= \t\n\x00") || len(f.v) > 253 {
			return fmt.Errorf("pod %s %q must be non-empty, at most 253 bytes, without ';', '=' or whitespace: %w", f.name, f.v, ErrInvalidArgument)
		}
	}
	for i, pm := range r.PortMappings {
		if err := pm.validate(); err != nil {
			return fmt.Errorf("port_mappings[%d]: %w", i, err)
		}
	}
	if len(r.Hostname) > 64 || strings.ContainsAny(r.Hostname, "/ \t\n\x00") {
		return fmt.Errorf("hostname %q: at most 64 bytes, no '/' or whitespace: %w", r.Hostname, ErrInvalidArgument)
	}
	return nil
}

func (pm PortMapping) validate() error {
	if _, err := cniProtocol(pm.Protocol); err != nil {
		return err
	}
	if pm.ContainerPort < 1 || pm.ContainerPort > 65535 {
		return fmt.Errorf("container port %d out of range 1-65535: %w", pm.ContainerPort, ErrInvalidArgument)
	}
	if pm.HostPort < 0 || pm.HostPort > 65535 {
		return fmt.Errorf("host port %d out of range 0-65535: %w", pm.HostPort, ErrInvalidArgument)
	}
	if pm.HostIP != "" {
		if _, err := netip.ParseAddr(pm.HostIP); err != nil {
			return fmt.Errorf("host IP %q: %w", pm.HostIP, ErrInvalidArgument)
		}
	}
	return nil
}

// cniProtocol maps a CRI protocol name to the lower-case name portmap takes.
func cniProtocol(p string) (string, error) {
	switch strings.ToUpper(p) {
	case "", "TCP":
		return "tcp", nil
	case "UDP":
		return "udp", nil
	case "SCTP":
		return "sctp", nil
	}
	return "", fmt.Errorf("protocol %q is not TCP, UDP or SCTP: %w", p, ErrInvalidArgument)
}
