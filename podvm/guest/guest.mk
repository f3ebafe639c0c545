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
GUEST_KERNEL_PIN         := $(GUEST_KERNEL_PKG)=$(GUEST_KERNEL_DEB_VERSION)@$(GUEST_KERNEL_DEB_SHA256)

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

# The kernel package (unpack-debs, top Makefile), then modules.dep.
$(GUEST_KERNEL_STAMP): | $(BUILD)/.deps
	@$(call unpack-debs,$(GUEST_KERNEL_PIN),$(GUEST_KERNEL_ROOT),$(GUEST_WORK))
	depmod -b $(GUEST_KERNEL_ROOT) $(GUEST_KERNEL_VERSION)
	@touch $@

# The runtime's packages, unpacked into one tree keyed by the pins.
$(GUEST_RUNTIME_STAMP): | $(BUILD)/.deps
	@$(call unpack-debs,$(GUEST_RUNTIME_DEBS),$(GUEST_RUNTIME_ROOT),$(GUEST_WORK))
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
