# podvisor — build, guest image, tests.
#
#   make run    install dependencies, build, and start the daemon
#   make test   install dependencies, build, run unit and end-to-end tests
#               and CRI conformance (critest)
#   make bench  run the benchmarks and print their tables
#   make conformance  critest alone (see docs/conformance.md)

SHELL := /bin/bash
GO ?= /usr/local/go/bin/go
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)
export GOFLAGS := -buildvcs=false

BIN   := bin
BUILD := build
GUEST := $(BUILD)/guest

# Debian packages the host needs. busybox-static is only used by tests (it is
# copied into a VM's shared directory, never into the guest image).
APT_PACKAGES := qemu-system-x86 qemu-utils kmod cpio iproute2 iptables busybox-static protobuf-compiler ca-certificates

# The unprivileged account VMM processes run as.
VMM_USER := podvisor-vmm

PROTOC_GEN_GO_VERSION      := v1.35.2
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1
OAPI_CODEGEN_VERSION       := v2.8.2
# crictl drives the daemon in the end-to-end tests, as an operator would.
CRICTL_VERSION             := v1.37.0
CRICTL := $(BUILD)/tools/crictl
# Development-time input for the generated Cloud Hypervisor client.
CH_SPEC ?= ../shared/cloud-hypervisor/cloud-hypervisor.yaml

.PHONY: all deps build guest test unit e2e bench run generate clean

all: build

deps: $(BUILD)/.deps
$(BUILD)/.deps: Makefile
	@mkdir -p $(BUILD)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@id -u $(VMM_USER) >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin $(VMM_USER)
	@touch $@

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/podvisor ./cmd/podvisor
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/podvisor-agent ./cmd/podvisor-agent

# $(call unpack-debs,PINS,DEST,WORK) unpacks Debian packages into DEST
# (emptied first). Each pin is name=version@sha256, the digest apt's signed
# index lists. A .deb is downloaded into $(BUILD) unless one with the pinned
# digest is already there, and is refused if its digest differs (a rebuilt
# or substituted package). apt-get download writes into the current
# directory: a private one under WORK, owned by apt's unprivileged _apt user
# so apt keeps its download sandbox, keeps partial files away from the real
# name. A stale or missing archive index is updated once and the download
# retried.
define unpack-debs
set -e; rm -rf $(2); mkdir -p $(2) $(3); \
for pin in $(1); do \
	nv=$${pin%@*}; sum=$${pin#*@}; name=$${nv%%=*}; ver=$${nv#*=}; \
	deb=$(BUILD)/$${name}_$$(echo $$ver | sed 's/^[0-9]*://')_amd64.deb; \
	if ! echo "$$sum  $$deb" | sha256sum --check --status 2>/dev/null; then \
		dl=$(3)/download; rm -rf $$dl; mkdir -p $$dl; \
		! id -u _apt >/dev/null 2>&1 || chown _apt $$dl; \
		echo "downloading $$nv"; \
		( cd $$dl && { apt-get download -q $$nv || { apt-get update -q && apt-get download -q $$nv; }; } ); \
		mv $$dl/*.deb $$deb; rm -rf $$dl; \
	fi; \
	echo "$$sum  $$deb" | sha256sum --check --quiet || \
		{ echo "$$deb: sha256 is not the pinned $$sum; refusing it" >&2; exit 1; }; \
	dpkg-deb -x $$deb $(2); \
done
endef

include podvm/guest/guest.mk
include network/cni.mk
include e2e/critest/conformance.mk

unit:
	$(GO) vet ./...
	$(GO) test -count=1 ./...

$(CRICTL):
	GOBIN=$(CURDIR)/$(BUILD)/tools CGO_ENABLED=0 $(GO) install sigs.k8s.io/cri-tools/cmd/crictl@$(CRICTL_VERSION)

E2E_ENV := PODVISOR_GUEST_DIR=$(CURDIR)/$(GUEST) PODVISOR_BIN_DIR=$(CURDIR)/$(BIN) PODVISOR_CRICTL=$(CURDIR)/$(CRICTL) \
	PODVISOR_TEST_KERNEL=$(CURDIR)/$(GUEST_KERNEL_ROOT)/boot/vmlinuz-$(GUEST_KERNEL_VERSION)
# Packages with VM tests (build tag e2e): they need root and QEMU.
E2E_PKGS := ./e2e/... ./podvm/... ./hypervisor/... ./network/...

e2e: deps build guest cni-plugins $(CRICTL)
	$(E2E_ENV) $(GO) test -tags e2e -count=1 -p 1 -timeout 40m -v $(E2E_PKGS)

test: deps build guest unit e2e conformance

bench: deps build guest cni-plugins $(CRICTL)
	$(E2E_ENV) $(GO) test -tags e2e -run '^$$' -bench . -benchtime 1x -timeout 60m ./e2e/...
	$(MAKE) conformance-bench

run: deps build guest cni-plugins cni-default-config
	$(BIN)/podvisor --guest-dir $(CURDIR)/$(GUEST)

generate:
	GOBIN=$(HOME)/go/bin $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(HOME)/go/bin $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	protoc --go_out=paths=source_relative:. --go-grpc_out=paths=source_relative:. podvm/agent/agentpb/agent.proto
	$(GO) run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@$(OAPI_CODEGEN_VERSION) -config hypervisor/cloudhypervisor/chapi/oapi-codegen.yaml -o hypervisor/cloudhypervisor/chapi/chapi.gen.go $(CH_SPEC)
	$(GO) run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@$(OAPI_CODEGEN_VERSION) -config hypervisor/cloudhypervisor/chapi/chspec/oapi-codegen.yaml -o hypervisor/cloudhypervisor/chapi/chspec/chspec.gen.go $(CH_SPEC)

clean:
	rm -rf $(BIN) $(BUILD)
