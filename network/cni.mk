# CNI support for podvisor: the reference plugins the default network uses and
# the default conflist. Included by the top-level Makefile.
#
#   make cni-plugins          go install the reference plugins into $(CNI_BIN_DIR)
#   make cni-default-config   write the default conflist into $(CNI_CONF_DIR),
#                             only when that directory holds no network config

GO ?= /usr/local/go/bin/go

CNI_PLUGINS_MODULE  := github.com/containernetworking/plugins
CNI_PLUGINS_VERSION := v1.9.1
CNI_BIN_DIR  ?= /opt/cni/bin
CNI_CONF_DIR ?= /etc/cni/net.d
CNI_PLUGINS  := main/bridge ipam/host-local main/loopback meta/portmap meta/firewall meta/tuning

.PHONY: cni-plugins cni-default-config

# A plugin is reinstalled only when the module version recorded in its build
# info differs from CNI_PLUGINS_VERSION, so re-running is cheap.
cni-plugins:
	@mkdir -p $(CNI_BIN_DIR)
	@missing=""; for p in $(CNI_PLUGINS); do \
		bin=$(CNI_BIN_DIR)/$$(basename $$p); \
		$(GO) version -m $$bin 2>/dev/null | grep -q "^[[:space:]]*mod[[:space:]]*$(CNI_PLUGINS_MODULE)[[:space:]]*$(CNI_PLUGINS_VERSION)[[:space:]]" \
			|| missing="$$missing $(CNI_PLUGINS_MODULE)/plugins/$$p@$(CNI_PLUGINS_VERSION)"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing CNI plugins $(CNI_PLUGINS_VERSION) into $(CNI_BIN_DIR)"; \
		CGO_ENABLED=0 GOBIN=$(CNI_BIN_DIR) GOFLAGS=-buildvcs=false $(GO) install -trimpath $$missing; \
	fi

# The conflist comes from network.DefaultConflist (one source of truth); the
# command refuses to touch a directory that already holds a network config.
cni-default-config:
	$(GO) run ./network/cmd/cnidefault -conf-dir $(CNI_CONF_DIR)
