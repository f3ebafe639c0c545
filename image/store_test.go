package image

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestRemove(t *testing.T) {
	reg := newTestRegistry(t)
	shared := layerOf(t, tarEntry{name: "shared", body: "base"})
	a := imageOf(t, v1.Config{}, shared, layerOf(t, tarEntry{name: "a", body: "a"}))
	b := imageOf(t, v1.Config{}, shared, layerOf(t, tarEntry{name: "b", body: "b"}))
	digestA := reg.push(t, "a:1", a)
	reg.push(t, "a:2", a)
	reg.push(t, "b:1", b)

	tests := []struct {
		name string
		ref  func(img Image) string
	}{
		{"by id", func(img Image) string { return img.ID }},
		{"by short id", func(img Image) string { return img.ID[7:19] }},
		{"by one tag removes all tags", func(Image) string { return reg.host + "/a:2" }},
		{"by digest", func(Image) string { return reg.host + "/a@" + digestA }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, root := newTestStore(t, DefaultConfig())
			var imgA Image
			for _, ref := range []string{"a:1", "a:2", "b:1"} {
				img, err := s.Pull(bg(), reg.host+"/"+ref, nil)
				if err != nil {
					t.Fatal(err)
				}
				if ref == "a:1" {
					imgA = img
				}
			}
			imgA, _ = s.Get(bg(), imgA.ID)
			if len(imgA.RepoTags) != 2 {
				t.Fatalf("A tags = %v", imgA.RepoTags)
			}
			dirsA, _ := s.LayerDirs(imgA)
			if err := s.Remove(bg(), tc.ref(imgA)); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			for _, ref := range []string{imgA.ID, reg.host + "/a:1", reg.host + "/a:2", reg.host + "/a@" + digestA} {
				if _, err := s.Get(bg(), ref); !errors.Is(err, ErrNotFound) {
					t.Errorf("Get(%s) after remove = %v, want ErrNotFound", ref, err)
				}
			}
			if _, err := os.Stat(dirsA[0]); err == nil {
				t.Error("A's own layer dir survived")
			}
			if _, err := os.Stat(dirsA[1]); err != nil {
				t.Errorf("shared layer removed while B uses it: %v", err)
			}
			if _, err := os.Stat(filepath.Join(root, "blobs", hexPath(imgA.ID))); err == nil {
				t.Error("A's config blob survived")
			}
			imgB, err := s.Get(bg(), reg.host+"/b:1")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.LayerDirs(imgB); err != nil {
				t.Errorf("B broken: %v", err)
			}
			if err := s.Remove(bg(), imgA.ID); err != nil {
				t.Errorf("second Remove = %v, want success", err)
			}
		})
	}
}

func TestRemoveInUse(t *testing.T) {
	reg := newTestRegistry(t)
	reg.push(t, "busy:1", simpleImage(t, "busy"))
	s, _ := newTestStore(t, DefaultConfig())
	img, err := s.Pull(bg(), reg.host+"/busy:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	used := true
	s.SetInUseFunc(func(id string) bool { return used && id == img.ID })
	if err := s.Remove(bg(), img.ID); !errors.Is(err, ErrInUse) {
		t.Fatalf("Remove = %v, want ErrInUse", err)
	}
	if _, err := s.LayerDirs(img); err != nil {
		t.Errorf("layers gone after refused remove: %v", err)
	}
	used = false
	if err := s.Remove(bg(), img.ID); err != nil {
		t.Fatal(err)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	reg := newTestRegistry(t)
	reg.push(t, "keep:1", simpleImage(t, "keep"))
	root := t.TempDir()
	s, err := Open(root, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Pull(bg(), reg.host+"/keep:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetPinned(bg(), img.ID, true); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Leftovers of a crash: a staging dir and an unreferenced layer.
	os.MkdirAll(filepath.Join(root, "tmp", "layer-123"), 0o700)
	orphan := filepath.Join(root, "layers", "sha256", "00000000000000000000000000000000000000000000000000000000000000ff")
	os.MkdirAll(orphan, 0o700)

	s, err = Open(root, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Get(bg(), reg.host+"/keep:1")
	if err != nil {
		t.Fatal(err)
	}
	img.Pinned = true
	if got.ID != img.ID || !got.Pinned || !slices.Equal(got.RepoTags, img.RepoTags) || !slices.Equal(got.RepoDigests, img.RepoDigests) || got.Size != img.Size {
		t.Errorf("after reopen %+v, want %+v", got, img)
	}
	if _, err := s.LayerDirs(got); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(orphan); err == nil {
		t.Error("orphan layer survived Open")
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "tmp")); len(entries) != 0 {
		t.Errorf("tmp not emptied: %v", entries)
	}
}

func TestGetLookups(t *testing.T) {
	mirror := newTestRegistry(t)
	mirror.push(t, "library/busybox:latest", simpleImage(t, "bb"))
	s, _ := newTestStore(t, Config{Mirrors: map[string][]Endpoint{"docker.io": {{URL: mirror.host, PlainHTTP: true}}}, NoUpstream: []string{"docker.io"}})
	img, err := s.Pull(bg(), "docker.io/library/busybox:latest", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"busybox", "busybox:latest", "library/busybox", "docker.io/library/busybox", img.ID, img.ID[7:], "sha256:" + img.ID[7:15], img.ID[7:10], img.RepoDigests[0]} {
		if got, err := s.Get(bg(), ref); err != nil || got.ID != img.ID {
			t.Errorf("Get(%q) = %s, %v", ref, got.ID, err)
		}
	}
	for _, ref := range []string{"busybox:other", "ffffffffffff", "alpine"} {
		if _, err := s.Get(bg(), ref); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", ref, err)
		}
	}
	if _, err := s.Get(bg(), "Not A Ref"); !errors.Is(err, ErrInvalidReference) {
		t.Errorf("Get(invalid) = %v, want ErrInvalidReference", err)
	}
	fsu, err := s.FsInfo(bg())
	if err != nil || fsu.UsedBytes == 0 || fsu.InodesUsed == 0 || fsu.Mountpoint == "" {
		t.Errorf("FsInfo = %+v, %v", fsu, err)
	}
	list, err := s.List(bg())
	if err != nil || len(list) != 1 || list[0].ID != img.ID {
		t.Errorf("List = %v, %v", list, err)
	}
}

func TestImageUserReporting(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	tests := []struct {
		user     string
		wantUID  *int64
		wantName string
	}{
		{"", nil, ""},
		{"1002", n(1002), ""},
		{"www-data", nil, "www-data"},
		{"1003:50", n(1003), ""},
		{"www-data:www-data", nil, "www-data"},
	}
	for _, tc := range tests {
		uid, name := ImageConfig{User: tc.user}.UIDOrUsername()
		if (uid == nil) != (tc.wantUID == nil) || uid != nil && *uid != *tc.wantUID || name != tc.wantName {
			t.Errorf("UIDOrUsername(%q) = %v %q", tc.user, uid, name)
		}
	}
}
