# Guest image: `make guest` writes $(GUEST)/{vmlinuz,initramfs.img,manifest.json}.
#
# The kernel is Debian's cloud kernel, pinned by package version and by the
# sha256 of the .deb (the same digest apt's signed Packages index lists), so
# a rebuilt or substituted package is refused. The initramfs is built by
# podvm/guest/mkguest from that kernel's modules and the agent binary.
#
# Variables:
#   GUEST_AGENT   agent binary to install as /init (default $(BIN)/podvisor-agent,
#                 built by `build`; set it to test with another binary, which
#                 then does not run `build`)
#
# Included from the top Makefile, which defines GO, BIN, BUILD and GUEST.

GUEST_KERNEL_VERSION     := 6.1.0-56-cloud-amd64
GUEST_KERNEL_PKG         := linux-image-$(GUEST_KERNEL_VERSION)
GUEST_KERNEL_DEB_VERSION := 6.1.192-2
GUEST_KERNEL_DEB_SHA256  := e7d02b943971edcb8790e256c02cfab3bca6c3d37c1bf25392a57c71300615ee
GUEST_KERNEL_DEB         := $(BUILD)/$(GUEST_KERNEL_PKG)_$(GUEST_KERNEL_DEB_VERSION)_amd64.deb

# The container runtime: Debian's runc 1.1.5 and exactly the packages whose
# libraries it links (DT_NEEDED libseccomp.so.2 and libc.so.6, plus the
# loader from libc6), each pinned by version and .deb sha256 as apt's signed
# index lists them. The libraries come from these pinned packages, not from
# the build host's /lib, so the image depends on recorded digests only.
# mkguest packs runc, its DT_NEEDED closure and its PT_INTERP loader.
GUEST_RUNTIME_DEBS := \
	runc=1.1.5+ds1-1+deb12u1@a00351f8c0318de0b424ecf5cd0fdb69880a89f3511cae4f6fff7de3e57881c5 \
	libseccomp2=2.5.4-1+deb12u1@108fe67957ca7cf9ba51d801118a1b37d404bea7b6e365025cd00779e9eca38d \
	libc6=2.36-9+deb12u14@ba4f88f73dbc3ae9055f3c20f4523bfdbaf1ad13ff95e258924f77d20b4fbedf
GUEST_RUNTIME_BINARY := /usr/sbin/runc

# Work area. The unpacked tree is keyed by the .deb digest, so changing the
# pin unpacks afresh instead of reusing a stale tree.
GUEST_WORK         := $(BUILD)/guest-work
GUEST_KERNEL_ROOT  := $(GUEST_WORK)/kernel-$(GUEST_KERNEL_DEB_SHA256)
GUEST_KERNEL_STAMP := $(GUEST_KERNEL_ROOT).unpacked
GUEST_RUNTIME_KEY   := $(shell echo '$(GUEST_RUNTIME_DEBS)' | sha256sum | cut -c1-16)
GUEST_RUNTIME_ROOT  := $(GUEST_WORK)/runtime-$(GUEST_RUNTIME_KEY)
GUEST_RUNTIME_STAMP := $(GUEST_RUNTIME_ROOT).unpacked

GUEST_AGENT ?= $(BIN)/podvisor-agent

GUEST_MKGUEST      := $(GUEST_WORK)/mkguest
GUEST_SRCS         := $(shell find podvm/guest -name '*.go' ! -name '*_test.go') go.mod go.sum
GUEST_OUTPUTS      := $(GUEST)/vmlinuz $(GUEST)/initramfs.img $(GUEST)/manifest.json

.PHONY: guest guest-clean guest-force

guest: $(GUEST_OUTPUTS)

# The default agent comes from the top Makefile's `build`. `build` is phony
# and `go build -o` rewrites its output even when nothing changed, so the
# image depends on the agent's content (GUEST_WORK/agent.sha256), not its
# mtime: make re-reads the file's mtime after `build` runs, and the stamp
# below only changes when the bytes do.
ifeq ($(origin GUEST_AGENT),file)
$(GUEST_AGENT): build ;
endif

# guest-stamp: write the sha256 of file $(1) to $(2), only if it differs, so
# targets depending on $(2) rebuild only when the content changed.
define guest-stamp
@mkdir -p $(dir $(2))
@sum=$$(sha256sum < $(1) | cut -d' ' -f1) && \
	{ [ "$$(cat $(2) 2>/dev/null)" = "$$sum" ] || echo "$$sum" > $(2); }
endef

# Checked on every run (guest-force), not by mtime: GUEST_AGENT may name a
# different, older file than the one the stamp was made from.
$(GUEST_WORK)/agent.sha256: $(GUEST_AGENT) guest-force
	$(call guest-stamp,$<,$@)

# mkguest is built (deterministically, -trimpath) rather than `go run`, and
# the image depends on the builder's content, so an unrelated go.mod edit
# that leaves the builder's bytes alone does not force a new image.
$(GUEST_MKGUEST): $(GUEST_SRCS)
	@mkdir -p $(@D)
	CGO_ENABLED=0 $(GO) build -trimpath -o $@ ./podvm/guest/mkguest

$(GUEST_WORK)/mkguest.sha256: $(GUEST_MKGUEST)
	$(call guest-stamp,$<,$@)

# Download (unless a .deb with the right digest is already there), verify,
# unpack, and generate modules.dep. apt-get download writes into the current
# directory: a private directory, owned by apt's unprivileged _apt user so
# apt can keep its download sandbox, keeps partial files away from the real
# name. If the archive index is stale or missing, update it once and retry.
$(GUEST_KERNEL_STAMP): | $(BUILD)/.deps
	@mkdir -p $(GUEST_WORK)
	@if ! echo "$(GUEST_KERNEL_DEB_SHA256)  $(GUEST_KERNEL_DEB)" | sha256sum --check --status 2>/dev/null; then \
		set -e; dl=$(GUEST_WORK)/download; rm -rf $$dl; mkdir -p $$dl; \
		! id -u _apt >/dev/null 2>&1 || chown _apt $$dl; \
		echo "downloading $(GUEST_KERNEL_PKG)=$(GUEST_KERNEL_DEB_VERSION)"; \
		( cd $$dl && { apt-get download -q $(GUEST_KERNEL_PKG)=$(GUEST_KERNEL_DEB_VERSION) || \
			{ apt-get update -q && apt-get download -q $(GUEST_KERNEL_PKG)=$(GUEST_KERNEL_DEB_VERSION); }; } ); \
		mv $$dl/$(notdir $(GUEST_KERNEL_DEB)) $(GUEST_KERNEL_DEB); \
		rm -rf $$dl; \
	fi
	@echo "$(GUEST_KERNEL_DEB_SHA256)  $(GUEST_KERNEL_DEB)" | sha256sum --check --quiet || \
		{ echo "$(GUEST_KERNEL_DEB): sha256 is not the pinned $(GUEST_KERNEL_DEB_SHA256); refusing it" >&2; exit 1; }
	rm -rf $(GUEST_KERNEL_ROOT)
	dpkg-deb -x $(GUEST_KERNEL_DEB) $(GUEST_KERNEL_ROOT)
	depmod -b $(GUEST_KERNEL_ROOT) $(GUEST_KERNEL_VERSION)
	@touch $@

# The runtime's packages, each downloaded (unless a .deb with the pinned
# digest is there), verified and unpacked into one tree keyed by the pins.
# Downloading works as for the kernel above.
$(GUEST_RUNTIME_STAMP): | $(BUILD)/.deps
	@mkdir -p $(GUEST_WORK)
	@set -e; rm -rf $(GUEST_RUNTIME_ROOT); mkdir -p $(GUEST_RUNTIME_ROOT); \
	for pin in $(GUEST_RUNTIME_DEBS); do \
		nv=$${pin%@*}; sum=$${pin#*@}; name=$${nv%%=*}; ver=$${nv#*=}; \
		deb=$(BUILD)/$${name}_$$(echo $$ver | sed 's/^[0-9]*://')_amd64.deb; \
		if ! echo "$$sum  $$deb" | sha256sum --check --status 2>/dev/null; then \
			dl=$(GUEST_WORK)/download; rm -rf $$dl; mkdir -p $$dl; \
			! id -u _apt >/dev/null 2>&1 || chown _apt $$dl; \
			echo "downloading $$nv"; \
			( cd $$dl && { apt-get download -q $$nv || { apt-get update -q && apt-get download -q $$nv; }; } ); \
			mv $$dl/*.deb $$deb; rm -rf $$dl; \
		fi; \
		echo "$$sum  $$deb" | sha256sum --check --quiet || \
			{ echo "$$deb: sha256 is not the pinned $$sum; refusing it" >&2; exit 1; }; \
		dpkg-deb -x $$deb $(GUEST_RUNTIME_ROOT); \
	done
	@touch $@

# One mkguest run writes all three files (grouped target).
$(GUEST_OUTPUTS) &: $(GUEST_WORK)/agent.sha256 $(GUEST_WORK)/mkguest.sha256 $(GUEST_KERNEL_STAMP) $(GUEST_RUNTIME_STAMP)
	$(GUEST_MKGUEST) -kernel-root $(GUEST_KERNEL_ROOT) -kernel-version $(GUEST_KERNEL_VERSION) \
		-kernel-package $(GUEST_KERNEL_PKG)=$(GUEST_KERNEL_DEB_VERSION) \
		-runtime-root $(GUEST_RUNTIME_ROOT) -runtime-binary $(GUEST_RUNTIME_BINARY) \
		-runtime-packages $(subst $(guest-space),$(guest-comma),$(strip $(GUEST_RUNTIME_DEBS))) \
		-agent $(GUEST_AGENT) -out $(GUEST)

guest-empty :=
guest-space := $(guest-empty) $(guest-empty)
guest-comma := ,

guest-clean:
	rm -rf $(GUEST) $(GUEST_WORK)

guest-force:
