package guest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// ManifestFile is the name of the manifest in an image directory.
const ManifestFile = "manifest.json"

// maxManifestSize bounds what Load reads: a manifest is a few KiB, and
// anything much larger is not one.
const maxManifestSize = 1 << 20

var (
	// ErrDigestMismatch means a file of the image does not hash to the
	// digest in its manifest: it was modified or replaced since the build.
	ErrDigestMismatch = errors.New("guest image digest mismatch")
	// ErrInvalidManifest means manifest.json is missing fields, malformed,
	// or names files outside the image directory.
	ErrInvalidManifest = errors.New("invalid guest image manifest")
)

// Manifest describes a built guest image. It is written by [Build] as
// manifest.json next to the files it names.
type Manifest struct {
	Kernel    KernelInfo `json:"kernel"`
	Initramfs FileDigest `json:"initramfs"`
	Agent     AgentInfo  `json:"agent"`
	// Modules are the module names in the order the agent loads them.
	Modules []string `json:"modules"`
	// Runtime is the container runtime in the initramfs, if any.
	Runtime *RuntimeInfo `json:"runtime,omitempty"`
}

// RuntimeInfo records the container runtime packed into the initramfs:
// which packages it came from and every file installed. Like AgentInfo it
// is covered by the initramfs digest and recorded for inspection.
type RuntimeInfo struct {
	// Binary is the runtime's path in the guest.
	Binary   string          `json:"binary"`
	Packages []PackageInfo   `json:"packages"`
	Files    []InstalledFile `json:"files"`
}

// InstalledFile is a file of the initramfs, by guest path, and its digest.
type InstalledFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// KernelInfo identifies the kernel image and where it came from.
type KernelInfo struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	// Version is the kernel release (uname -r), e.g. 6.1.0-56-cloud-amd64.
	Version string `json:"version"`
	// Package is the Debian package it was taken from, as name=version.
	Package string `json:"package"`
}

// FileDigest names a file of the image and its SHA-256.
type FileDigest struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
}

// AgentInfo records which agent binary is /init in the initramfs. It is
// covered by the initramfs digest; recording it separately lets the host
// tell which agent build a guest runs.
type AgentInfo struct {
	SHA256 string `json:"sha256"`
}

// Image is a guest image directory opened with [Load].
type Image struct {
	Dir      string
	Manifest Manifest
}

// Load reads and validates dir/manifest.json. It does not hash the files;
// call [Image.Verify] for that before booting.
func Load(dir string) (*Image, error) {
	f, err := os.Open(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("load guest image: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("load guest image: %w", err)
	}
	if len(data) > maxManifestSize {
		return nil, fmt.Errorf("load guest image %s: %w: larger than %d bytes", f.Name(), ErrInvalidManifest, maxManifestSize)
	}
	m, err := parseManifest(data)
	if err != nil {
		return nil, fmt.Errorf("load guest image %s: %w", f.Name(), err)
	}
	return &Image{Dir: dir, Manifest: m}, nil
}

func parseManifest(data []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	// The manifest is written by the same build as the daemon reading it:
	// an unknown field means a mismatch or a hand edit, not a newer format.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	if dec.More() {
		return Manifest{}, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalidManifest)
	}
	if err := m.validate(); err != nil {
		return Manifest{}, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	return m, nil
}

func (m *Manifest) validate() error {
	for _, c := range []struct{ field, file, digest string }{
		{"kernel", m.Kernel.File, m.Kernel.SHA256},
		{"initramfs", m.Initramfs.File, m.Initramfs.SHA256},
	} {
		if !validImageFile(c.file) {
			return fmt.Errorf("%s.file %q: want a file name inside the image directory", c.field, c.file)
		}
		if !validDigest(c.digest) {
			return fmt.Errorf("%s.sha256 %q: want 64 lowercase hex digits", c.field, c.digest)
		}
	}
	if m.Kernel.File == m.Initramfs.File {
		return fmt.Errorf("kernel and initramfs are the same file %q", m.Kernel.File)
	}
	if !validDigest(m.Agent.SHA256) {
		return fmt.Errorf("agent.sha256 %q: want 64 lowercase hex digits", m.Agent.SHA256)
	}
	if m.Kernel.Version == "" {
		return errors.New("kernel.version is empty")
	}
	if m.Runtime != nil {
		return m.Runtime.validate()
	}
	return nil
}

func (r *RuntimeInfo) validate() error {
	if !strings.HasPrefix(r.Binary, "/") {
		return fmt.Errorf("runtime.binary %q: want an absolute path", r.Binary)
	}
	for i, p := range r.Packages {
		if p.Name == "" || p.Version == "" || !validDigest(p.SHA256) {
			return fmt.Errorf("runtime.packages[%d]: want name, version and a sha256 of 64 lowercase hex digits", i)
		}
	}
	for i, f := range r.Files {
		if !strings.HasPrefix(f.Path, "/") || !validDigest(f.SHA256) {
			return fmt.Errorf("runtime.files[%d]: want an absolute path and a sha256 of 64 lowercase hex digits", i)
		}
	}
	return nil
}

// validImageFile accepts a plain file name, so a manifest can never point
// Verify or a VMM at a file outside the image directory.
func validImageFile(name string) bool {
	return name != "" && name != "." && name != ".." && name != ManifestFile &&
		filepath.Base(name) == name
}

func validDigest(s string) bool {
	if len(s) != sha256.Size*2 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// KernelPath is the path of the kernel image, inside Dir.
func (im *Image) KernelPath() string { return filepath.Join(im.Dir, im.Manifest.Kernel.File) }

// InitramfsPath is the path of the base initramfs, inside Dir.
func (im *Image) InitramfsPath() string { return filepath.Join(im.Dir, im.Manifest.Initramfs.File) }

// Verify re-hashes the kernel and the initramfs and compares them with the
// manifest. A mismatch is reported as [ErrDigestMismatch], naming the file
// and both digests; if both files differ, both are reported.
//
// It runs before every boot, so the two files are hashed concurrently and
// streamed through a fixed buffer, never read whole into memory: about
// 25 ms for a 14 MiB kernel and a 24 MiB initramfs on a 2-core host with
// SHA extensions (BenchmarkVerify), about what SHA-256 itself costs.
func (im *Image) Verify() error {
	checks := []struct{ path, want string }{
		{im.KernelPath(), im.Manifest.Kernel.SHA256},
		{im.InitramfsPath(), im.Manifest.Initramfs.SHA256},
	}
	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			errs[i] = verifyFile(c.path, c.want)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("verify guest image %s: %w", im.Dir, err)
	}
	return nil
}

func verifyFile(path, want string) error {
	got, err := hashFile(path)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%w: %s: manifest has sha256 %s, file has %s", ErrDigestMismatch, path, want, got)
	}
	return nil
}

// hashFile returns the hex SHA-256 of the file at path.
func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	// A plain read loop with 1 MiB reads: io.Copy would use os.File's
	// WriteTo and its 32 KiB buffer, and the larger reads save syscalls.
	buf := make([]byte, 1<<20)
	for {
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", path, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
