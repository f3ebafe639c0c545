# CRI conformance: critest against podvisor, offline.
#
#   make conformance         run critest's validation suite against a private
#                            podvisor daemon and check e2e/critest/expected-pass.txt
#   make conformance-bench   run critest's benchmarks (critest -benchmark)
#
# Variables:
#   CONFORMANCE_FOCUS   regexp: run only the matching specs (ginkgo focus);
#                       with a focus or skip the expected-pass list is not
#                       enforced, since most of its specs would not run
#   CONFORMANCE_SKIP    regexp: skip the matching specs
#   CONFORMANCE_FLAGS   more harness flags (see the doc of
#                       e2e/critest/cmd/conformance, e.g. --keep)
#
# critest's images are stand-ins built by the harness from the pinned Debian
# packages below and served from a registry on 127.0.0.1 that the podvisor
# config names as the mirror of registry.k8s.io, k8s.gcr.io and gcr.io. See
# docs/conformance.md.
#
# Included from the top Makefile, which defines GO, BIN, BUILD and GUEST and
# the targets deps, build, guest and cni-plugins.

CRITEST_VERSION := v1.37.0
CRITEST_WORK    := $(BUILD)/critest
CRITEST_HARNESS := $(CRITEST_WORK)/conformance
CRITEST_EXPECT  := e2e/critest/expected-pass.txt

# The userland of the test images: Debian's dynamically linked busybox (its
# shell runs /bin/ls, not its own applet, so MaskedPaths behaves as with the
# upstream image), ipcs (util-linux) and pgrep (procps), and exactly the
# packages holding their DT_NEEDED closure (glibc; libproc2 -> libsystemd ->
# libcap, libgcrypt -> libgpg-error, liblzma, libzstd, liblz4). Each is
# pinned by version and by the .deb sha256 apt's signed index lists; the
# harness refuses a tree in which a needed library is missing. libc6 is the
# same pin as the guest runtime's, so the download is shared.
CRITEST_DEBS := \
	busybox=1:1.35.0-4+deb12u1+b1@4b355fad07d4fe1f5aa282e949281f8dcb7bcdebb023d7e40f4f8fe475e21e29 \
	libc6=2.36-9+deb12u14@ba4f88f73dbc3ae9055f3c20f4523bfdbaf1ad13ff95e258924f77d20b4fbedf \
	util-linux=2.38.1-5+deb12u3@8eb241ff24b2e1ee9c0373f4fc9bc728b85bf5966c1496154df7da01c0e42f34 \
	procps=2:4.0.2-3@d9d0e75779cb79af869181f17b93c5c263a2b89cac6a0193c436160a4483ddc1 \
	libproc2-0=2:4.0.2-3@e82ba5d01929eafb8b9954606a3c38b0332a987c2b3432388b4ee7365e54deae \
	libsystemd0=252.39-1~deb12u2@013c07514a9e4933b2d5c098018695a6aa42d085dbc483ce2c094a954c8a1b0a \
	libcap2=1:2.66-4+deb12u3+b1@8d684c673e7483802a5c447834b0df6fce006eb3a7109e1be412f5ad425bb24f \
	libgcrypt20=1.10.1-3+deb12u1@e7a56552139c693904a6f9712234c05fe918353273a7cbdb5e62f423ad71bb97 \
	libgpg-error0=1.46-1@89944ee11d7370ce6ef46fc52f094c4a6512eff8943ec4c6ebefeae6360ceada \
	liblzma5=5.4.1-1+deb12u2@3d8c29c8c21ec6007635e1b2591edf98b771c9572a085968f47452b33040f384 \
	libzstd1=1.5.4+dfsg2-5@6315b5ac38b724a710fb96bf1042019398cb656718b1522279a5185ed39318fa \
	liblz4-1=1.9.4-1@64cde86cef1deaf828bd60297839b59710b5cd8dc50efd4f12643caaee9389d3

# The unpacked tree is keyed by the pins, so changing one unpacks afresh.
CRITEST_DEBIAN_KEY   := $(shell echo '$(CRITEST_DEBS)' | sha256sum | cut -c1-16)
CRITEST_DEBIAN_ROOT  := $(CRITEST_WORK)/debian-$(CRITEST_DEBIAN_KEY)
CRITEST_DEBIAN_STAMP := $(CRITEST_DEBIAN_ROOT).unpacked

.PHONY: conformance conformance-bench conformance-harness

# Each package is downloaded unless a .deb with the pinned digest is already
# in $(BUILD), verified, and unpacked (unpack-debs, top Makefile).
$(CRITEST_DEBIAN_STAMP): | $(BUILD)/.deps
	@$(call unpack-debs,$(CRITEST_DEBS),$(CRITEST_DEBIAN_ROOT),$(CRITEST_WORK))
	@touch $@

conformance-harness:
	@mkdir -p $(CRITEST_WORK)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(CRITEST_HARNESS) ./e2e/critest/cmd/conformance

CRITEST_RUN = $(CRITEST_HARNESS) --go $(GO) --critest-version $(CRITEST_VERSION) \
	--podvisor $(CURDIR)/$(BIN)/podvisor --guest-dir $(CURDIR)/$(GUEST) \
	--debian-root $(CURDIR)/$(CRITEST_DEBIAN_ROOT) --build-dir $(CURDIR)/$(CRITEST_WORK) \
	$(if $(CONFORMANCE_FOCUS),--focus '$(CONFORMANCE_FOCUS)') \
	$(if $(CONFORMANCE_SKIP),--skip '$(CONFORMANCE_SKIP)')

conformance: deps build guest cni-plugins $(CRITEST_DEBIAN_STAMP) conformance-harness
	$(CRITEST_RUN) --report-dir $(CURDIR)/$(CRITEST_WORK)/report \
		$(if $(CONFORMANCE_FOCUS)$(CONFORMANCE_SKIP),,--expect $(CRITEST_EXPECT)) $(CONFORMANCE_FLAGS)

conformance-bench: deps build guest cni-plugins $(CRITEST_DEBIAN_STAMP) conformance-harness
	$(CRITEST_RUN) --benchmark --report-dir $(CURDIR)/$(CRITEST_WORK)/bench $(CONFORMANCE_FLAGS)
