package image

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// Image is what the store knows about one image. Values are copies: changing
// one does not change the store.
type Image struct {
	// ID is the digest of the image config ("sha256:<hex>").
	ID string
	// RepoTags are normalized tag references ("docker.io/library/busybox:latest").
	RepoTags []string
	// RepoDigests are "name@sha256:<manifest or index digest>" references.
	RepoDigests []string
	// Size is the sum of the compressed layers and the config, as containerd reports it.
	Size uint64
	// Pinned images are exempt from kubelet's image garbage collection.
	Pinned bool
	// Created is the creation time recorded in the config.
	Created time.Time
	// DiffIDs are the uncompressed layer digests, base layer first.
	DiffIDs []string
	// Config is the runtime part of the image config.
	Config ImageConfig
}

// ImageConfig is the part of an OCI image config a container is created from.
type ImageConfig struct {
	User         string            `json:"user,omitempty"`
	Entrypoint   []string          `json:"entrypoint,omitempty"`
	Cmd          []string          `json:"cmd,omitempty"`
	Env          []string          `json:"env,omitempty"`
	WorkingDir   string            `json:"workingDir,omitempty"`
	ExposedPorts []string          `json:"exposedPorts,omitempty"`
	Volumes      []string          `json:"volumes,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	StopSignal   string            `json:"stopSignal,omitempty"`
}

// UIDOrUsername splits the config's User the way CRI's ImageStatus reports
// it: a numeric user part is a uid, anything else a user name; the group
// part is ignored.
func (c ImageConfig) UIDOrUsername() (uid *int64, username string) {
	user, _, _ := strings.Cut(c.User, ":")
	if user == "" {
		return nil, ""
	}
	if n, err := strconv.ParseInt(user, 10, 64); err == nil {
		return &n, ""
	}
	return nil, user
}

func (img Image) clone() Image {
	img.RepoTags = slices.Clone(img.RepoTags)
	img.RepoDigests = slices.Clone(img.RepoDigests)
	img.DiffIDs = slices.Clone(img.DiffIDs)
	c := &img.Config
	c.Entrypoint = slices.Clone(c.Entrypoint)
	c.Cmd = slices.Clone(c.Cmd)
	c.Env = slices.Clone(c.Env)
	c.ExposedPorts = slices.Clone(c.ExposedPorts)
	c.Volumes = slices.Clone(c.Volumes)
	if c.Labels != nil {
		labels := make(map[string]string, len(c.Labels))
		for k, v := range c.Labels {
			labels[k] = v
		}
		c.Labels = labels
	}
	return img
}

func digestOf(s string) digest.Digest { return digest.Digest(s) }
