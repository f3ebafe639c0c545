package images

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Entry is one member of a layer. Exactly one of Data, Link, HardLink or
// Dir applies; a regular file is the default. testimage's layers have no
// hard links, and the busybox userland needs them: upstream's busybox image
// links every applet to one binary, so masking /bin/ls masks only ls.
type Entry struct {
	Path     string // relative, slash-separated
	Mode     int64  // permission and setuid bits; 0 means 0755 for dirs, 0644 for files
	Data     []byte
	Link     string // symlink target
	HardLink string // path of an earlier regular file in the same layer
	Dir      bool
	UID, GID int
}

// Layer is a set of entries; missing parent directories are added.
type Layer []Entry

// Config is the part of the image configuration the stand-ins set.
type Config struct {
	Entrypoint, Cmd []string
	Env             []string
	WorkingDir      string
	User            string
	ExposedPorts    []string // "80/tcp"
	Labels          map[string]string
	StopSignal      string
}

// defaultPath is the PATH of upstream's busybox-based images.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Compile turns the layer into an image layer, so that one tarball serves
// every image built on it.
func (l Layer) Compile() (v1.Layer, error) {
	data, err := l.tar()
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
}

// Build assembles a linux/amd64 image from layers, lowest first. The result
// depends only on its inputs: timestamps are fixed, so equal inputs give
// equal digests.
func Build(cfg Config, layers ...v1.Layer) (v1.Image, error) {
	img := empty.Image
	for i, layer := range layers {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{Layer: layer,
			History: v1.History{CreatedBy: fmt.Sprintf("podvisor critest stand-in layer %d", i), Created: v1.Time{Time: time.Unix(0, 0).UTC()}}})
		if err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	c := &cf.Config
	c.Entrypoint, c.Cmd, c.WorkingDir, c.User, c.Labels, c.StopSignal = cfg.Entrypoint, cfg.Cmd, cfg.WorkingDir, cfg.User, cfg.Labels, cfg.StopSignal
	c.Env = append([]string{defaultPath}, cfg.Env...)
	if len(cfg.ExposedPorts) > 0 {
		c.ExposedPorts = map[string]struct{}{}
		for _, p := range cfg.ExposedPorts {
			c.ExposedPorts[p] = struct{}{}
		}
	}
	return mutate.ConfigFile(img, cf)
}

// tar writes the layer as an uncompressed tarball, parents before children
// and hard links after their targets, with fixed timestamps.
func (l Layer) tar() ([]byte, error) {
	entries := map[string]Entry{}
	for _, e := range l {
		p := strings.Trim(path.Clean("/"+e.Path), "/")
		if p == "" {
			return nil, fmt.Errorf("entry with an empty path")
		}
		e.Path = p
		entries[p] = e
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := entries[d]; !ok {
				entries[d] = Entry{Path: d, Dir: true}
			}
		}
	}
	names := make([]string, 0, len(entries))
	for p := range entries {
		names = append(names, p)
	}
	// Sorted by name, but every hard link after all regular files, so that
	// its target is always written first.
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
		e := entries[p]
		h := &tar.Header{Name: p, Mode: e.Mode, Uid: e.UID, Gid: e.GID, ModTime: mtime, Format: tar.FormatPAX}
		switch {
		case e.Dir:
			h.Typeflag, h.Name = tar.TypeDir, p+"/"
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		case e.Link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.Link, 0o777
		case e.HardLink != "":
			target := strings.Trim(path.Clean("/"+e.HardLink), "/")
			if t, ok := entries[target]; !ok || t.Dir || t.Link != "" || t.HardLink != "" {
				return nil, fmt.Errorf("hard link %s: %s is not a regular file of the layer", p, e.HardLink)
			}
			h.Typeflag, h.Linkname = tar.TypeLink, target
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.Data))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
