// Package streaming owns podvisor's CRI streaming server: the HTTP server
// behind the URLs that the Exec, Attach and PortForward RPCs return, which
// kubelet (or crictl) connects to with SPDY or websocket to run `kubectl
// exec`, `attach` and `port-forward`.
//
// The protocols, the single-use tokens in the URLs and the request
// validation are kubelet's own CRI streaming library
// (k8s.io/cri-streaming/pkg/streaming). This package serves it, configures
// it, and adapts it to a small Backend that the rest of cri implements on
// top of pod VMs: processes and port connections in the guest. The adapter
// copies the client's streams to and from the guest, passes terminal sizes
// on, and reports an exec'd process's exit code the way the library sends
// it to clients.
package streaming
