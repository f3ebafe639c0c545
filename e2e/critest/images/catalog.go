// Package images builds offline stand-ins for every Linux image critest
// v1.37.0 pulls (pkg/validate/consts.go, the specs under pkg/validate and
// the Dockerfiles under images/ of sigs.k8s.io/cri-tools) and serves them
// from a registry on 127.0.0.1, so that the conformance suite runs without
// network access. The stand-ins keep what the specs look at: users and
// groups, tag and digest relationships, the web server's port, pid file and
// "master process" command line, a setuid program for NoNewPrivs.
package images

import (
	"fmt"
	"sort"
	"strings"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/podvisor/podvisor/e2e/testimage"
)

// References critest pulls (by default; the harness' test-images file names
// the first two explicitly).
const (
	e2eImages = "registry.k8s.io/e2e-test-images/"
	criTools  = "gcr.io/k8s-staging-cri-tools/"

	// BusyboxRef is framework.DefaultLinuxContainerImage.
	BusyboxRef = e2eImages + "busybox:1.29-2"
	// NginxRef is the web server of the networking, streaming and PID
	// namespace specs.
	NginxRef = e2eImages + "nginx:1.14-2"
	// HttpdRef is the web server of the Multiple Containers specs.
	HttpdRef = e2eImages + "httpd:2.4.39-4"
	// NoNewPrivsRef is the NoNewPrivs specs' setuid image.
	NoNewPrivsRef = e2eImages + "nonewprivs:1.3"
	// DigestRef is testLinuxImageWithDigest: pinned to upstream's manifest
	// digest, which no offline build can reproduce.
	DigestRef = criTools + "test-image-digest@sha256:9700f9a2f5bf2c45f2f605a0bd3bce7cf37420ec9d3ed50ac2758413308766bf"
)

// PauseTags are the pause images served under registry.k8s.io/pause, each
// a distinct image; 3.9 is also k8s.gcr.io/pause:3.9 (the same image, as
// the "same image from different registries" specs require). The
// benchmarks list and pull them.
var PauseTags = []string{"3.6", "3.7", "3.8", "3.9", "3.10", "3.10.1"}

// Image is one stand-in and every reference it is pulled by.
type Image struct {
	Refs []string
	Img  v1.Image
}

// Programs are the static stand-in binaries (see e2e/critest/standins).
type Programs struct {
	Nginx, Pause, NNP []byte
}

// Catalog builds every stand-in from the busybox userland layer (Userland)
// and the stand-in programs.
func Catalog(userland Layer, p Programs) ([]Image, error) {
	base, err := userland.Compile()
	if err != nil {
		return nil, fmt.Errorf("userland: %w", err)
	}
	// A stand-in is the userland (or, for pause, nothing) plus at most one
	// layer of its own.
	type standin struct {
		cfg      Config
		userland bool
		own      Layer
		refs     []string
	}
	sh := Config{Cmd: []string{"sh"}}
	list := []standin{
		{sh, true, nil, []string{BusyboxRef}},
		{nginxConfig, true, nginxLayer(p.Nginx, 80), []string{NginxRef}},
		// Kubernetes' httpd e2e image: the specs fetch / on port 80 and look
		// for "httpd" in its log.
		{Config{Cmd: []string{"httpd-foreground"}, ExposedPorts: []string{"80/tcp"}, WorkingDir: "/usr/local/apache2"}, true, httpdLayer(), []string{HttpdRef}},
		// images/hostnet-nginx: nginx listening on 12003, for host-network
		// pods only.
		{nginxConfig, true, nginxLayer(p.Nginx, 12003), []string{criTools + "hostnet-nginx-amd64:latest"}},
		// test/images/nonewprivs of Kubernetes: a setuid-root program that
		// prints its effective uid.
		{Config{Entrypoint: []string{"/usr/local/bin/nnp"}}, true,
			Layer{{Path: "usr/local/bin/nnp", Data: p.NNP, Mode: 0o4755}}, []string{NoNewPrivsRef}},
		// images/image-user, one per USER build argument of images/build.
		{Config{Cmd: sh.Cmd, User: "1002"}, true, nil, []string{criTools + "test-image-user-uid:latest"}},
		{Config{Cmd: sh.Cmd, User: "www-data"}, true, nil, []string{criTools + "test-image-user-username:latest"}},
		{Config{Cmd: sh.Cmd, User: "1003:1004"}, true, nil, []string{criTools + "test-image-user-uid-group:latest"}},
		{Config{Cmd: sh.Cmd, User: "www-data:1004"}, true, nil, []string{criTools + "test-image-user-username-group:latest"}},
		// images/image-predefined-group: `adduser -u 1000 -D default-user`,
		// `addgroup -g 50000 group-defined-in-image`, membership, USER 1000.
		{Config{Cmd: sh.Cmd, User: "1000"}, true, predefinedGroupLayer(), []string{criTools + "test-image-predefined-group:latest"}},
		// images/image-test: busybox plus an empty file named after the
		// image (or tag), so each differs; test-image-tags:1..3 are one
		// build (the file "same-image") and so one digest.
		{sh, true, marker("same-image"), []string{criTools + "test-image-tags:1", criTools + "test-image-tags:2", criTools + "test-image-tags:3"}},
		{sh, true, marker("test"), []string{criTools + "test-image-tag:test"}},
		{sh, true, marker("all"), []string{criTools + "test-image-tag:all"}},
	}
	for _, name := range []string{"test-image-1", "test-image-2", "test-image-3", "test-image-latest", "test-image-digest"} {
		list = append(list, standin{sh, true, marker(name), []string{criTools + name + ":latest"}})
	}
	for _, tag := range PauseTags {
		refs := []string{"registry.k8s.io/pause:" + tag}
		if tag == "3.9" {
			refs = append(refs, "k8s.gcr.io/pause:3.9")
		}
		// The label makes each tag its own image over the same layer.
		cfg := Config{Entrypoint: []string{"/pause"}, User: "65535:65535", Labels: map[string]string{"io.podvisor.critest.pause-version": tag}}
		list = append(list, standin{cfg, false, Layer{{Path: "pause", Data: p.Pause, Mode: 0o755}}, refs})
	}
	var out []Image
	for _, s := range list {
		var layers []v1.Layer
		if s.userland {
			layers = append(layers, base)
		}
		if s.own != nil {
			l, err := s.own.Compile()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.refs[0], err)
			}
			layers = append(layers, l)
		}
		img, err := Build(s.cfg, layers...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.refs[0], err)
		}
		out = append(out, Image{Refs: s.refs, Img: img})
	}
	return out, nil
}

// nginxConfig is the upstream nginx image's command; the stand-in turns it
// into nginx's "nginx: master process nginx -g daemon off;" command line.
var nginxConfig = Config{Cmd: []string{"nginx", "-g", "daemon off;"}, ExposedPorts: []string{"80/tcp"}}

func nginxLayer(prog []byte, port int) Layer {
	conf := fmt.Sprintf("server {\n    listen       %d;\n    server_name  localhost;\n    location / {\n        root   /usr/share/nginx/html;\n        index  index.html;\n    }\n}\n", port)
	return Layer{
		{Path: "usr/sbin/nginx", Data: prog, Mode: 0o755},
		{Path: "etc/nginx/conf.d/default.conf", Data: []byte(conf)},
		{Path: "usr/share/nginx/html/index.html", Data: []byte(indexHTML)},
		{Path: "var/run", Dir: true},
		{Path: "var/log/nginx", Dir: true},
	}
}

const indexHTML = `<!DOCTYPE html>
<html>
<head><title>Welcome to nginx!</title></head>
<body><h1>Welcome to nginx!</h1><p>podvisor critest stand-in.</p></body>
</html>
`

// httpdForeground runs busybox's httpd as upstream's httpd-foreground runs
// Apache: in the foreground, logging to stderr. The shell stays PID 1 with
// a TERM handler, so the container stops on SIGTERM instead of waiting for
// SIGKILL (PID 1 ignores signals it has no handler for).
const httpdForeground = `#!/bin/sh
echo "httpd-foreground: httpd (busybox) serving /usr/local/apache2/htdocs on port 80" >&2
httpd -f -v -p 80 -h /usr/local/apache2/htdocs &
trap 'kill $! 2>/dev/null; exit 0' TERM INT
wait
`

func httpdLayer() Layer {
	return Layer{
		{Path: "usr/local/bin/httpd-foreground", Data: []byte(httpdForeground), Mode: 0o755},
		{Path: "usr/local/apache2/htdocs/index.html", Data: []byte("<html><body><h1>It works!</h1></body></html>\n")},
	}
}

func predefinedGroupLayer() Layer {
	return Layer{
		{Path: "etc/passwd", Data: []byte(passwd + "default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n")},
		{Path: "etc/group", Data: []byte(group + "default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")},
		{Path: "home/default-user", Dir: true, UID: 1000, GID: 1000},
	}
}

func marker(name string) Layer { return Layer{{Path: name}} }

// Hosts lists the registry hosts of the images' references, which the
// daemon must map to the local registry.
func Hosts(imgs []Image) ([]string, error) {
	set := map[string]bool{}
	for _, im := range imgs {
		for _, r := range im.Refs {
			named, err := reference.ParseNormalizedNamed(r)
			if err != nil {
				return nil, err
			}
			set[reference.Domain(named)] = true
		}
	}
	var out []string
	for h := range set {
		out = append(out, h)
	}
	sort.Strings(out)
	return out, nil
}

// repoTag is ref's path and tag on the mirror: the registry host is
// dropped and the path kept, as podvisor's mirror lookup does.
func repoTag(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", err
	}
	tag := "latest"
	if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	}
	if _, ok := named.(reference.Digested); ok {
		return "", fmt.Errorf("%s: a stand-in cannot be pushed by digest", ref)
	}
	return reference.Path(named) + ":" + tag, nil
}

// Push uploads every image under each of its references' path and tag.
// Two references of different images landing on one path and tag (for
// example registry.k8s.io/pause:3.9 and k8s.gcr.io/pause:3.9, which must
// be one image) is an error.
func Push(reg *testimage.Registry, imgs []Image) error {
	owner := map[string]string{}
	for _, im := range imgs {
		d, err := im.Img.Digest()
		if err != nil {
			return err
		}
		for _, r := range im.Refs {
			rt, err := repoTag(r)
			if err != nil {
				return err
			}
			if prev, ok := owner[rt]; ok && prev != d.String() {
				return fmt.Errorf("%s: mirror path %s already holds another image", r, rt)
			}
			owner[rt] = d.String()
			if _, err := reg.Push(rt, im.Img); err != nil {
				return err
			}
		}
	}
	return nil
}

// Describe lists "reference digest" lines, for the harness' log.
func Describe(imgs []Image) string {
	var b strings.Builder
	for _, im := range imgs {
		d, _ := im.Img.Digest()
		for _, r := range im.Refs {
			fmt.Fprintf(&b, "%s %s\n", r, d)
		}
	}
	return b.String()
}
