package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestPullReferences(t *testing.T) {
	reg := newTestRegistry(t)
	img := simpleImage(t, "refs")
	digest := reg.push(t, "app:1", img)
	repo := reg.host + "/app"

	tests := []struct {
		name, ref   string
		wantTags    []string
		wantDigests []string
	}{
		{"tag", repo + ":1", []string{repo + ":1"}, []string{repo + "@" + digest}},
		{"digest", repo + "@" + digest, nil, []string{repo + "@" + digest}},
		{"tag and digest keeps the digest", repo + ":1@" + digest, nil, []string{repo + "@" + digest}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestStore(t, DefaultConfig())
			got, err := s.Pull(bg(), tc.ref, nil)
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			if got.ID != imageID(t, img) {
				t.Errorf("ID = %s, want %s", got.ID, imageID(t, img))
			}
			if !slices.Equal(got.RepoTags, tc.wantTags) || !slices.Equal(got.RepoDigests, tc.wantDigests) {
				t.Errorf("refs = %v %v, want %v %v", got.RepoTags, got.RepoDigests, tc.wantTags, tc.wantDigests)
			}
			if got.Size == 0 || len(got.DiffIDs) != 1 || !slices.Equal(got.Config.Cmd, []string{"/bin/true"}) {
				t.Errorf("image = %+v", got)
			}
			dirs, err := s.LayerDirs(got)
			if err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(dirs[0], "etc/marker")); err != nil || string(b) != "refs" {
				t.Errorf("unpacked marker = %q, %v", b, err)
			}
			for _, ref := range append(append([]string{got.ID, got.ID[7:19]}, tc.wantTags...), tc.wantDigests...) {
				if g, err := s.Get(bg(), ref); err != nil || g.ID != got.ID {
					t.Errorf("Get(%q) = %s, %v", ref, g.ID, err)
				}
			}
		})
	}
}

func TestPullSize(t *testing.T) {
	reg := newTestRegistry(t)
	img := simpleImage(t, "size")
	reg.push(t, "size:1", img)
	s, _ := newTestStore(t, DefaultConfig())
	got, err := s.Pull(bg(), reg.host+"/size:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := img.Manifest()
	want := uint64(m.Config.Size + m.Layers[0].Size)
	if got.Size != want {
		t.Errorf("Size = %d, want %d (config + compressed layers)", got.Size, want)
	}
}

func TestPullMirrors(t *testing.T) {
	mirror := newTestRegistry(t)
	upstream := newTestRegistry(t)
	dead := newTestRegistry(t)
	dead.srv.Close()
	onMirror := simpleImage(t, "mirror")
	onUpstream := simpleImage(t, "upstream")
	mirror.push(t, "library/busybox:latest", onMirror)
	mirror.push(t, "team/app:1", onMirror)
	upstream.push(t, "team/app:2", onUpstream)

	tests := []struct {
		name    string
		cfg     Config
		ref     string
		wantID  string
		wantTag string
	}{
		{
			name:    "short name through a docker.io mirror",
			cfg:     Config{Mirrors: map[string][]Endpoint{"docker.io": {{URL: "http://" + mirror.host}}}, NoUpstream: []string{"docker.io"}},
			ref:     "busybox",
			wantID:  imageID(t, onMirror),
			wantTag: "docker.io/library/busybox:latest",
		},
		{
			name:    "dead mirror skipped, path preserved",
			cfg:     Config{Mirrors: map[string][]Endpoint{upstream.host: {{URL: dead.host, PlainHTTP: true}, {URL: mirror.host, PlainHTTP: true}}}},
			ref:     upstream.host + "/team/app:1",
			wantID:  imageID(t, onMirror),
			wantTag: upstream.host + "/team/app:1",
		},
		{
			name:    "falls back to upstream",
			cfg:     Config{Mirrors: map[string][]Endpoint{upstream.host: {{URL: mirror.host, PlainHTTP: true}}}},
			ref:     upstream.host + "/team/app:2",
			wantID:  imageID(t, onUpstream),
			wantTag: upstream.host + "/team/app:2",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestStore(t, tc.cfg)
			got, err := s.Pull(bg(), tc.ref, nil)
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			if got.ID != tc.wantID || !slices.Equal(got.RepoTags, []string{tc.wantTag}) {
				t.Errorf("got %s %v, want %s [%s]", got.ID, got.RepoTags, tc.wantID, tc.wantTag)
			}
		})
	}

	t.Run("mirror's not found beats an unreachable upstream", func(t *testing.T) {
		s, _ := newTestStore(t, Config{Mirrors: map[string][]Endpoint{dead.host: {{URL: mirror.host, PlainHTTP: true}}}})
		if _, err := s.Pull(bg(), dead.host+"/team/missing:1", nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("Pull = %v, want ErrNotFound", err)
		}
	})

	t.Run("no upstream", func(t *testing.T) {
		s, _ := newTestStore(t, Config{Mirrors: map[string][]Endpoint{upstream.host: {{URL: mirror.host, PlainHTTP: true}}}, NoUpstream: []string{upstream.host}})
		if _, err := s.Pull(bg(), upstream.host+"/team/app:2", nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("Pull = %v, want ErrNotFound", err)
		}
	})
}

func TestPullManifestListPicksAmd64(t *testing.T) {
	reg := newTestRegistry(t)
	arm := simpleImage(t, "arm64")
	amd := simpleImage(t, "amd64")
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	idxDigest := reg.pushIndex(t, "multi:1", idx)
	s, _ := newTestStore(t, DefaultConfig())
	got, err := s.Pull(bg(), reg.host+"/multi:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != imageID(t, amd) {
		t.Errorf("ID = %s, want the amd64 image %s", got.ID, imageID(t, amd))
	}
	if want := []string{reg.host + "/multi@" + idxDigest}; !slices.Equal(got.RepoDigests, want) {
		t.Errorf("RepoDigests = %v, want the index digest %v", got.RepoDigests, want)
	}
}

func TestPullCorruptLayer(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, reg *testRegistry) string
	}{
		{"blob does not match its digest", func(t *testing.T, reg *testRegistry) string {
			img := simpleImage(t, "good")
			reg.push(t, "bad:1", img)
			layers, _ := img.Layers()
			d, _ := layers[0].Digest()
			rc, _ := layers[0].Compressed()
			defer rc.Close()
			body := readAll(t, rc)
			body[len(body)/2] ^= 0xff // same size, different bytes
			reg.corrupt[d.String()] = body
			return "bad:1"
		}},
		{"blob replaced by another valid layer", func(t *testing.T, reg *testRegistry) string {
			img := simpleImage(t, "good2")
			reg.push(t, "bad:3", img)
			layers, _ := img.Layers()
			d, _ := layers[0].Digest()
			size, _ := layers[0].Size()
			// Same compressed size, so only the digest can tell.
			for i := 0; ; i++ {
				other, _ := layerOf(t, tarEntry{name: "etc/", typ: tar.TypeDir}, tarEntry{name: "etc/marker", body: fmt.Sprintf("evil%d", i)}).Compressed()
				body := readAll(t, other)
				other.Close()
				if int64(len(body)) == size {
					reg.corrupt[d.String()] = body
					return "bad:3"
				}
				if i > 1000 {
					t.Skip("no same-size replacement found")
				}
			}
		}},
		{"diffID does not match the layer", func(t *testing.T, reg *testRegistry) string {
			img := simpleImage(t, "diffid")
			cf, _ := img.ConfigFile()
			cf = cf.DeepCopy()
			cf.RootFS.DiffIDs[0] = v1.Hash{Algorithm: "sha256", Hex: "0000000000000000000000000000000000000000000000000000000000000000"}
			img, _ = mutate.ConfigFile(img, cf)
			reg.push(t, "bad:2", img)
			return "bad:2"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := newTestRegistry(t)
			ref := tc.setup(t, reg)
			s, root := newTestStore(t, DefaultConfig())
			_, err := s.Pull(bg(), reg.host+"/"+ref, nil)
			if !errors.Is(err, ErrInvalidLayer) {
				t.Fatalf("Pull = %v, want ErrInvalidLayer", err)
			}
			for _, d := range []string{"layers/sha256", "tmp"} {
				if entries, _ := os.ReadDir(filepath.Join(root, d)); len(entries) != 0 {
					t.Errorf("%s left behind: %v", d, entries)
				}
			}
			if imgs, _ := s.List(bg()); len(imgs) != 0 {
				t.Errorf("List = %v, want empty", imgs)
			}
		})
	}
}

func TestPullAuth(t *testing.T) {
	reg := newTestRegistry(t)
	reg.push(t, "private:1", simpleImage(t, "private"))
	reg.requireAuth("alice", "s3cret")
	ref := reg.host + "/private:1"
	tests := []struct {
		name    string
		auth    *Auth
		wantErr error
	}{
		{"username and password", &Auth{Username: "alice", Password: "s3cret"}, nil},
		{"base64 auth", &Auth{Auth: "YWxpY2U6czNjcmV0"}, nil},
		{"server address matches", &Auth{Username: "alice", Password: "s3cret", ServerAddress: "http://" + reg.host}, nil},
		{"wrong password", &Auth{Username: "alice", Password: "nope"}, ErrUnauthorized},
		{"no credentials", nil, ErrUnauthorized},
		{"credentials for another registry", &Auth{Username: "alice", Password: "s3cret", ServerAddress: "other.example"}, ErrUnauthorized},
		{"malformed base64", &Auth{Auth: "!!"}, ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestStore(t, DefaultConfig())
			_, err := s.Pull(bg(), ref, tc.auth)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Pull = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestPullCoalesced(t *testing.T) {
	reg := newTestRegistry(t)
	reg.push(t, "slow:1", simpleImage(t, "slow"))
	m0, b0 := reg.counts()
	reg.manifestDelay = 300 * time.Millisecond
	s, _ := newTestStore(t, DefaultConfig())
	var wg sync.WaitGroup
	ids := make([]string, 8)
	errs := make([]error, 8)
	for i := range ids {
		wg.Go(func() {
			img, err := s.Pull(bg(), reg.host+"/slow:1", nil)
			ids[i], errs[i] = img.ID, err
		})
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("pull %d = %s, %v", i, ids[i], errs[i])
		}
	}
	m1, b1 := reg.counts()
	if m1-m0 != 1 {
		t.Errorf("manifest GETs = %d, want 1", m1-m0)
	}
	if b1-b0 != 2 { // config + one layer
		t.Errorf("blob GETs = %d, want 2", b1-b0)
	}
}

func TestPullCallerDeadline(t *testing.T) {
	reg := newTestRegistry(t)
	reg.push(t, "slow:1", simpleImage(t, "deadline"))
	reg.manifestDelay = 200 * time.Millisecond
	s, _ := newTestStore(t, DefaultConfig())
	ctx, cancel := context.WithTimeout(bg(), time.Millisecond)
	defer cancel()
	if _, err := s.Pull(ctx, reg.host+"/slow:1", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Pull = %v, want DeadlineExceeded", err)
	}
	// The shared download finished anyway; a retry joins or finds it.
	if _, err := s.Pull(bg(), reg.host+"/slow:1", nil); err != nil {
		t.Fatal(err)
	}
}

func TestPullNotFoundAndInvalid(t *testing.T) {
	reg := newTestRegistry(t)
	s, _ := newTestStore(t, DefaultConfig())
	if _, err := s.Pull(bg(), reg.host+"/missing:1", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing = %v, want ErrNotFound", err)
	}
	if _, err := s.Pull(bg(), "busybox:bad tag", nil); !errors.Is(err, ErrInvalidReference) {
		t.Errorf("invalid = %v, want ErrInvalidReference", err)
	}
}

func TestTagMovesBetweenImages(t *testing.T) {
	reg := newTestRegistry(t)
	a, b := simpleImage(t, "A"), simpleImage(t, "B")
	reg.push(t, "x:1", a)
	s, _ := newTestStore(t, DefaultConfig())
	if _, err := s.Pull(bg(), reg.host+"/x:1", nil); err != nil {
		t.Fatal(err)
	}
	reg.push(t, "x:1", b)
	gotB, err := s.Pull(bg(), reg.host+"/x:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	gotA, err := s.Get(bg(), imageID(t, a))
	if err != nil {
		t.Fatal(err)
	}
	if len(gotA.RepoTags) != 0 || len(gotA.RepoDigests) != 1 {
		t.Errorf("A refs = %v %v, want no tag, its digest kept", gotA.RepoTags, gotA.RepoDigests)
	}
	if !slices.Equal(gotB.RepoTags, []string{reg.host + "/x:1"}) {
		t.Errorf("B tags = %v", gotB.RepoTags)
	}
	if g, _ := s.Get(bg(), reg.host+"/x:1"); g.ID != imageID(t, b) {
		t.Errorf("x:1 resolves to %s, want B", g.ID)
	}
}

func readAll(t *testing.T, r interface{ Read([]byte) (int, error) }) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return out
		}
	}
}
