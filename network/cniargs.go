package network

import "github.com/containernetworking/cni/libcni"

// Capability names from the CNI conventions document.
const (
	capPortMappings = "portMappings"
	capDNS          = "dns"
)

// cniPortMapping is one entry of the portMappings capability argument.
type cniPortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// cniDNS is the dns capability argument.
type cniDNS struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

// runtimeConf builds the per-invocation CNI arguments for a validated
// request: the CNI_ARGS kubelet-era plugins look for and the capability
// arguments libcni hands to plugins that declare them. ADD and DEL get
// the same arguments, so DEL can be rebuilt from the persisted request.
func runtimeConf(req PodRequest, netnsPath, ifName string) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: req.ID,
		NetNS:       netnsPath,
		IfName:      ifName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", req.Namespace},
			{"K8S_POD_NAME", req.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", req.ID},
			{"K8S_POD_UID", req.UID},
		},
		CapabilityArgs: map[string]interface{}{},
	}
	if pms := cniPortMappings(req.PortMappings); len(pms) > 0 {
		rt.CapabilityArgs[capPortMappings] = pms
	}
	if req.DNS != nil {
		rt.CapabilityArgs[capDNS] = cniDNS{Servers: req.DNS.Servers, Searches: req.DNS.Searches, Options: req.DNS.Options}
	}
	return rt
}

// cniPortMappings drops mappings without a host port: they only document
// the container port and portmap has nothing to forward.
func cniPortMappings(in []PortMapping) []cniPortMapping {
	var out []cniPortMapping
	for _, pm := range in {
		if pm.HostPort <= 0 {
			continue
		}
		proto, _ := cniProtocol(pm.Protocol) // validated with the request
		out = append(out, cniPortMapping{HostPort: pm.HostPort, ContainerPort: pm.ContainerPort, Protocol: proto, HostIP: pm.HostIP})
	}
	return out
}
