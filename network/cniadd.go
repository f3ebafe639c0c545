package network

import (
	"context"
	"fmt"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

// addChain runs ADD for each plugin of list in order, passing each the
// previous result, as AddNetworkList does, but through libcni's per-plugin
// AddNetwork, which caches every plugin's result under the network's name.
// After plugin k fails the cache therefore holds the chain's result up to
// k-1, and the DEL that rolls the pod back hands it to every plugin as
// prevResult: plugins that clean up by address (firewall) need it, and
// AddNetworkList caches nothing on failure. A successful chain leaves the
// final result cached, which is what DelNetworkList reads.
func addChain(ctx context.Context, cni libcni.CNI, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (types.Result, error) {
	var prev types.Result
	for _, plugin := range list.Plugins {
		inject := map[string]interface{}{"name": list.Name, "cniVersion": list.CNIVersion}
		if prev != nil {
			inject["prevResult"] = prev
		}
		conf, err := libcni.InjectConf(plugin, inject)
		if err != nil {
			return nil, fmt.Errorf("plugin type=%q: build config: %w", plugin.Network.Type, err)
		}
		res, err := cni.AddNetwork(ctx, conf, rt)
		if err != nil {
			return nil, fmt.Errorf("plugin type=%q failed (add): %w", plugin.Network.Type, err)
		}
		prev = res
	}
	return prev, nil
}
