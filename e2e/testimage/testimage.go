// Package testimage builds small container images for the end-to-end tests
// and serves them from an OCI registry on the loopback interface, so that
// the tests pull over the real registry protocol without leaving the host.
package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// File is one entry of a layer. Exactly one of Data, Link, HardLink or Dir
// applies; a regular file is the default.
type File struct {
	Path     string // relative, slash-separated
	Mode     int64  // permission and setuid bits; 0 means 0755 for dirs, 0644 for files
	Data     []byte
	Link     string // symlink target
	HardLink string // path of a regular file of the same layer
	Dir      bool
	UID, GID int
}

// Layer is an ordered set of entries; parent directories are added.
type Layer []File

// Config is the part of the image configuration the tests set.
type Config struct {
	Entrypoint, Cmd []string
	Env             []string
	WorkingDir      string
	User            string
	ExposedPorts    []string // "80/tcp"
	Labels          map[string]string
	StopSignal      string
}

// defaultPath is set in every image whose Env has no PATH.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Build assembles a linux/amd64 image from layers, lowest first.
func Build(cfg Config, layers ...Layer) (v1.Image, error) {
	compiled := make([]v1.Layer, len(layers))
	for i, l := range layers {
		var err error
		if compiled[i], err = l.Compile(); err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return BuildFrom(cfg, compiled...)
}

// Compile turns the layer into an image layer, so that one tarball can
// serve several images.
func (l Layer) Compile() (v1.Layer, error) {
	data, err := l.tar()
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
}

// BuildFrom assembles a linux/amd64 image from compiled layers, lowest
// first. Timestamps are fixed, so equal inputs give equal digests.
func BuildFrom(cfg Config, layers ...v1.Layer) (v1.Image, error) {
	epoch := v1.Time{Time: time.Unix(0, 0).UTC()}
	img := empty.Image
	for i, layer := range layers {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{Layer: layer,
			History: v1.History{CreatedBy: fmt.Sprintf("testimage layer %d", i), Created: epoch}})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", "amd64", epoch
	c := &cf.Config
	c.Entrypoint, c.Cmd, c.WorkingDir, c.User, c.Labels, c.StopSignal = cfg.Entrypoint, cfg.Cmd, cfg.WorkingDir, cfg.User, cfg.Labels, cfg.StopSignal
	c.Env = cfg.Env
	if !hasPath(cfg.Env) {
		c.Env = append([]string{defaultPath}, cfg.Env...)
	}
	if len(cfg.ExposedPorts) > 0 {
		c.ExposedPorts = map[string]struct{}{}
		for _, p := range cfg.ExposedPorts {
			c.ExposedPorts[p] = struct{}{}
		}
	}
	return mutate.ConfigFile(img, cf)
}

func hasPath(env []string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			return true
		}
	}
	return false
}

// tar writes the layer as an uncompressed tarball with fixed timestamps,
// parents before children and hard links after their targets.
func (l Layer) tar() ([]byte, error) {
	entries := map[string]File{}
	for _, f := range l {
		p := strings.Trim(path.Clean("/"+f.Path), "/")
		if p == "" {
			return nil, fmt.Errorf("entry with an empty path")
		}
		f.Path = p
		entries[p] = f
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := entries[d]; !ok {
				entries[d] = File{Path: d, Dir: true}
			}
		}
	}
	names := make([]string, 0, len(entries))
	for p := range entries {
		names = append(names, p)
	}
	// By name, but every hard link after all regular files, so that its
	// target is always written first.
	sort.Slice(names, func(i, j int) bool {
		hi, hj := entries[names[i]].HardLink != "", entries[names[j]].HardLink != ""
		if hi != hj {
			return hj
		}
		return names[i] < names[j]
	})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	for _, p := range names {
		f := entries[p]
		h := &tar.Header{Name: p, Mode: f.Mode, Uid: f.UID, Gid: f.GID, ModTime: mtime, Format: tar.FormatPAX}
		switch {
		case f.Dir:
			h.Typeflag, h.Name = tar.TypeDir, p+"/"
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		case f.Link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.Link, 0o777
		case f.HardLink != "":
			target := strings.Trim(path.Clean("/"+f.HardLink), "/")
			if t, ok := entries[target]; !ok || t.Dir || t.Link != "" || t.HardLink != "" {
				return nil, fmt.Errorf("hard link %s: %s is not a regular file of the layer", p, f.HardLink)
			}
			h.Typeflag, h.Linkname = tar.TypeLink, target
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// HostFile reads a host file into a layer entry at dst.
func HostFile(src, dst string, mode int64) (File, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return File{}, err
	}
	return File{Path: dst, Data: data, Mode: mode}, nil
}

// Registry is an OCI distribution registry on 127.0.0.1 with its blobs in
// memory.
type Registry struct {
	// Host is "127.0.0.1:port".
	Host string
	srv  *http.Server
	ln   net.Listener
}

// StartRegistry serves an empty registry on a free loopback port.
func StartRegistry() (*Registry, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Registry{Host: ln.Addr().String(), ln: ln,
		srv: &http.Server{Handler: registry.New(registry.Logger(discardLogger())), ReadHeaderTimeout: 10 * time.Second}}
	go r.srv.Serve(ln)
	return r, nil
}

// Close stops the registry.
func (r *Registry) Close() error { return r.srv.Close() }

// Push uploads img as repo:tag (repo without host, e.g. "e2e/busybox") and
// returns the pushed reference by digest.
func (r *Registry) Push(repoTag string, img v1.Image) (string, error) {
	ref, err := name.ParseReference(r.Host+"/"+repoTag, name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return ref.Context().Digest(d.String()).String(), nil
}
