// Package image owns podvisor's container images on the host: pulling them
// from registries (auth, mirrors, insecure endpoints), importing docker and OCI
// archives, a content-addressed store of manifests and configs, every layer
// unpacked once into an overlayfs-ready lower directory, and the metadata
// (tags, repo digests, size, config, pinning) the CRI ImageService reports.
//
// Layout under the store's root:
//
//	blobs/sha256/<hex>     manifests and configs, by digest
//	layers/sha256/<hex>    one unpacked layer per diffID (overlay lower dir)
//	tmp/                   staging; emptied at Open
//	meta.db                bbolt: images by ID and references → ID
//
// Compressed layer blobs are not kept: the verified, unpacked directory is the
// layer, so disk use is not doubled.
package image
