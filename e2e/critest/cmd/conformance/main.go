// Command conformance runs critest, the CRI validation suite of
// sigs.k8s.io/cri-tools, against podvisor without network access.
//
// It builds critest and the image stand-ins (e2e/critest/images), serves
// the images from a registry on 127.0.0.1, starts bin/podvisor with private
// directories under /run and a config that makes that registry the mirror
// of every registry critest pulls from, runs critest with a JUnit and a
// JSON report, and prints
//
//	critest: N passed, M failed, K skipped of T
//
// followed by the failing specs. It then removes every pod through CRI,
// stops the daemon by PID, checks that no VM process, mount, netns, veth,
// IP reservation or bridge of its own is left, and removes what it created.
//
// Run it from the module root, as root (make conformance does):
//
//	conformance --debian-root DIR [--focus RE] [--skip RE] [--expect FILE]
//
// With --expect, the exit status is non-zero when a spec listed in FILE
// did not pass (failed, was skipped or did not run); other failures are
// reported but tolerated. Without it, any failed spec fails the run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// options are the harness' flags.
type options struct {
	podvisor       string
	guestDir       string
	debianRoot     string
	buildDir       string
	reportDir      string
	goBin          string
	critestVersion string
	critest        string
	focus, skip    string
	expect         string
	writePassed    string
	benchmark      bool
	driver         string
	cniBinDir      string
	suiteTimeout   time.Duration
	keep           bool
	verbosity      int
}

func main() {
	var o options
	flag.StringVar(&o.podvisor, "podvisor", "bin/podvisor", "podvisor daemon binary")
	flag.StringVar(&o.guestDir, "guest-dir", "build/guest", "guest image directory")
	flag.StringVar(&o.debianRoot, "debian-root", "", "tree with the pinned Debian packages unpacked (conformance.mk)")
	flag.StringVar(&o.buildDir, "build-dir", "build/critest", "where critest and the stand-in programs are built")
	flag.StringVar(&o.reportDir, "report-dir", "", "where the JUnit and JSON reports and logs go (default BUILD-DIR/report)")
	flag.StringVar(&o.goBin, "go", "go", "go command")
	flag.StringVar(&o.critestVersion, "critest-version", "v1.37.0", "sigs.k8s.io/cri-tools version to build critest from")
	flag.StringVar(&o.critest, "critest", "", "use this critest binary instead of building one")
	flag.StringVar(&o.focus, "focus", "", "run only specs matching this regexp (ginkgo focus)")
	flag.StringVar(&o.skip, "skip", "", "skip specs matching this regexp (ginkgo skip)")
	flag.StringVar(&o.expect, "expect", "", "file listing specs that must pass, one per line")
	flag.StringVar(&o.writePassed, "write-passed", "", "write the names of the passing specs to this file")
	flag.BoolVar(&o.benchmark, "benchmark", false, "run critest's benchmarks instead of the validation suite")
	flag.StringVar(&o.driver, "driver", "auto", "podvm.driver of the daemon: auto, qemu or cloud-hypervisor")
	flag.StringVar(&o.cniBinDir, "cni-bin-dir", "/opt/cni/bin", "CNI plugin directory")
	flag.DurationVar(&o.suiteTimeout, "suite-timeout", 3*time.Hour, "bound on critest's whole run (ginkgo.timeout)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (daemon log, config) after the run")
	flag.IntVar(&o.verbosity, "v", 2, "the daemon's klog verbosity")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "conformance: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
	}
	os.Exit(code)
}

// run does the whole job and returns the exit status.
func run(ctx context.Context, o options) (int, error) {
	if err := o.absolutize(); err != nil {
		return 2, err
	}
	if os.Geteuid() != 0 {
		return 2, errors.New("must run as root (pod VMs, network namespaces, bridges)")
	}
	start := time.Now()
	if err := os.MkdirAll(o.reportDir, 0o755); err != nil {
		return 2, err
	}
	bins, err := buildPrograms(ctx, o)
	if err != nil {
		return 2, err
	}
	reg, imgs, err := serveImages(o, bins)
	if err != nil {
		return 2, err
	}
	defer reg.Close()

	host := snapshotHost()
	d, err := newDaemon(o, reg.Host, imgs)
	if err != nil {
		return 2, err
	}
	var critestErr error
	if err = d.start(ctx); err == nil {
		critestErr = runCritest(ctx, o, bins.critest, d)
	}
	leftovers := d.teardown(host)
	if err != nil {
		return 2, err
	}

	rep, repErr := loadReport(filepath.Join(o.reportDir, "report.json"))
	if repErr != nil {
		return 2, fmt.Errorf("critest left no usable report (%v): %w", critestErr, repErr)
	}
	code := rep.print(os.Stdout, time.Since(start))
	if o.writePassed != "" {
		if err := os.WriteFile(o.writePassed, []byte(rep.passedList()), 0o644); err != nil {
			return 2, err
		}
	}
	if o.expect != "" {
		code, err = rep.checkExpected(os.Stdout, o.expect)
		if err != nil {
			return 2, err
		}
	}
	if len(leftovers) > 0 {
		fmt.Println("cleanup: the run left these behind (removed where they were ours):")
		for _, l := range leftovers {
			fmt.Println("  " + l)
		}
		code = 1
	}
	if ctx.Err() != nil {
		return 2, errors.New("interrupted")
	}
	return code, nil
}

func (o *options) absolutize() error {
	if o.debianRoot == "" {
		return errors.New("--debian-root is required (make conformance prepares it)")
	}
	if o.reportDir == "" {
		o.reportDir = filepath.Join(o.buildDir, "report")
	}
	for _, p := range []*string{&o.podvisor, &o.guestDir, &o.debianRoot, &o.buildDir, &o.reportDir, &o.critest, &o.expect, &o.writePassed} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	for _, p := range []string{o.podvisor, o.guestDir, o.debianRoot} {
		if _, err := os.Stat(p); err != nil {
			return err
		}
	}
	return nil
}
