package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/podvisor/podvisor/e2e/critest/images"
	"github.com/podvisor/podvisor/e2e/testimage"
)

const (
	criToolsModule = "sigs.k8s.io/cri-tools"
	standinsPkg    = "github.com/podvisor/podvisor/e2e/critest/standins/"
)

// programs are the binaries the harness built.
type programs struct {
	critest  string
	standins images.Programs
}

// buildPrograms builds critest from the Go module cache and the static
// stand-in programs that go into the images.
func buildPrograms(ctx context.Context, o options) (programs, error) {
	var p programs
	if err := os.MkdirAll(o.buildDir, 0o755); err != nil {
		return p, err
	}
	p.critest = o.critest
	if p.critest == "" {
		var err error
		if p.critest, err = buildCritest(ctx, o); err != nil {
			return p, err
		}
	}
	for _, s := range []struct {
		name string
		dst  *[]byte
	}{{"nginx", &p.standins.Nginx}, {"pause", &p.standins.Pause}, {"nnp", &p.standins.NNP}} {
		out := filepath.Join(o.buildDir, "standins", s.name)
		// Static, stripped and without a build ID, so that the images'
		// digests only change when the source does.
		cmd := exec.CommandContext(ctx, o.goBin, "build", "-trimpath", "-ldflags", "-s -w -buildid=", "-o", out, standinsPkg+s.name)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if err := runLogged(cmd); err != nil {
			return p, fmt.Errorf("build stand-in %s: %w", s.name, err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			return p, err
		}
		*s.dst = b
	}
	return p, nil
}

// buildCritest downloads the cri-tools module into the module cache (from
// a directory outside any module, so go.mod and go.sum stay untouched) and
// builds critest's test binary from it. -o points outside the read-only
// module cache; the module's own go.mod and go.sum select its dependencies.
func buildCritest(ctx context.Context, o options) (string, error) {
	tmp, err := os.MkdirTemp("", "critest-mod-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	dl := exec.CommandContext(ctx, o.goBin, "mod", "download", "-json", criToolsModule+"@"+o.critestVersion)
	dl.Dir = tmp
	dl.Env = append(os.Environ(), "GO111MODULE=on")
	var stdout, stderr bytes.Buffer
	dl.Stdout, dl.Stderr = &stdout, &stderr
	if err := dl.Run(); err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w\n%s%s", criToolsModule, o.critestVersion, err, stdout.String(), stderr.String())
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(stdout.Bytes(), &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("go mod download: no module directory in %q", stdout.String())
	}
	out := filepath.Join(o.buildDir, "critest-"+o.critestVersion)
	fmt.Printf("building critest %s from %s\n", o.critestVersion, mod.Dir)
	build := exec.CommandContext(ctx, o.goBin, "test", "-c", "-o", out, "./cmd/critest")
	build.Dir = mod.Dir
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if err := runLogged(build); err != nil {
		return "", fmt.Errorf("build critest: %w", err)
	}
	return out, nil
}

func runLogged(cmd *exec.Cmd) error {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", cmd.Args, err, out)
	}
	return nil
}

// serveImages builds the stand-in images and pushes them to a fresh
// registry on 127.0.0.1.
func serveImages(o options, p programs) (*testimage.Registry, []images.Image, error) {
	userland, err := images.Userland(o.debianRoot)
	if err != nil {
		return nil, nil, fmt.Errorf("userland from %s: %w", o.debianRoot, err)
	}
	imgs, err := images.Catalog(userland, p.standins)
	if err != nil {
		return nil, nil, err
	}
	reg, err := testimage.StartRegistry()
	if err != nil {
		return nil, nil, err
	}
	if err := images.Push(reg, imgs); err != nil {
		reg.Close()
		return nil, nil, err
	}
	list := images.Describe(imgs)
	if err := os.WriteFile(filepath.Join(o.reportDir, "images.txt"), []byte(list), 0o644); err != nil {
		reg.Close()
		return nil, nil, err
	}
	fmt.Printf("serving %d stand-in images on %s (list in %s)\n", len(imgs), reg.Host, filepath.Join(o.reportDir, "images.txt"))
	return reg, imgs, nil
}
