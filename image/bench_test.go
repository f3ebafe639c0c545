package image

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
)

// BenchmarkPullUnpack pulls a ~50 MB image (5 random, incompressible layers)
// from a local registry into a fresh store and unpacks it.
func BenchmarkPullUnpack(b *testing.B) {
	reg := newTestRegistry(b)
	img, err := random.Image(10<<20, 5)
	if err != nil {
		b.Fatal(err)
	}
	reg.push(b, "bench:1", img)
	m, _ := img.Manifest()
	var size int64
	for _, l := range m.Layers {
		size += l.Size
	}
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		root := b.TempDir()
		s, err := Open(root, DefaultConfig())
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := s.Pull(bg(), reg.host+"/bench:1", nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
}
