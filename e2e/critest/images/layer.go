package images

import "github.com/podvisor/podvisor/e2e/testimage"

// The stand-ins are built with testimage's layers. Hard links matter here:
// upstream's busybox image links every applet to one binary, so masking
// /bin/ls masks only ls, not the shell.
type (
	// Entry is one member of a layer.
	Entry = testimage.File
	// Layer is a set of entries; missing parent directories are added.
	Layer = testimage.Layer
	// Config is the part of the image configuration the stand-ins set.
	Config = testimage.Config
)

// Build assembles a linux/amd64 image from compiled layers, lowest first;
// equal inputs give equal digests.
var Build = testimage.BuildFrom
