package image

import (
	"archive/tar"
	"errors"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const (
	basePasswd = "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\n"
	baseGroup  = "root:x:0:\nwww-data:x:33:\nalice:x:1000:\nstaff:x:50:alice,bob\nwheel:x:10:alice\n"
)

func TestResolveUser(t *testing.T) {
	reg := newTestRegistry(t)
	base := layerOf(t,
		tarEntry{name: "etc/", typ: tar.TypeDir},
		tarEntry{name: "etc/passwd", body: basePasswd},
		tarEntry{name: "etc/group", body: baseGroup})
	// The top layer adds bob to passwd; group comes from the base layer.
	top := layerOf(t, tarEntry{name: "etc/passwd", body: basePasswd + "bob:x:1001:1001::/home/bob:/bin/sh\n"})
	reg.push(t, "users:1", imageOf(t, v1.Config{User: "www-data"}, base, top))
	// A whiteout hides passwd; an opaque /etc hides group.
	reg.push(t, "hidden:1", imageOf(t, v1.Config{}, base,
		layerOf(t, tarEntry{name: "etc/.wh.passwd"}),
		layerOf(t, tarEntry{name: "etc/.wh..wh..opq"}, tarEntry{name: "etc/hostname", body: "x"})))

	s, _ := newTestStore(t, DefaultConfig())
	users, err := s.Pull(bg(), reg.host+"/users:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	hidden, err := s.Pull(bg(), reg.host+"/hidden:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		img      Image
		user     string
		uid, gid uint32
		groups   []uint32
		wantErr  error
	}{
		{users, "", 33, 33, nil, nil}, // the image's own User
		{users, "root", 0, 0, nil, nil},
		{users, "alice", 1000, 1000, []uint32{50, 10}, nil},
		{users, "bob", 1001, 1001, []uint32{50}, nil}, // from the top layer
		{users, "1000", 1000, 1000, []uint32{50, 10}, nil},
		{users, "4242", 4242, 0, nil, nil}, // unknown uid: gid 0
		{users, "1000:33", 1000, 33, []uint32{50, 10}, nil},
		{users, "alice:staff", 1000, 50, []uint32{10}, nil},
		{users, "4242:4343", 4242, 4343, nil, nil},
		{users, "nobody", 0, 0, nil, ErrNotFound},
		{users, "alice:nogroup", 0, 0, nil, ErrNotFound},
		{hidden, "alice", 0, 0, nil, ErrNotFound},   // passwd whited out
		{hidden, "0:staff", 0, 0, nil, ErrNotFound}, // group hidden by opaque /etc
		{hidden, "1000:1000", 1000, 1000, nil, nil},
	}
	for _, tc := range tests {
		uid, gid, groups, err := s.ResolveUser(tc.img, tc.user)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%s %q: err = %v, want %v", tc.img.RepoTags, tc.user, err, tc.wantErr)
			}
			continue
		}
		if err != nil || uid != tc.uid || gid != tc.gid || !slices.Equal(groups, tc.groups) {
			t.Errorf("%s %q = %d %d %v %v, want %d %d %v", tc.img.RepoTags, tc.user, uid, gid, groups, err, tc.uid, tc.gid, tc.groups)
		}
	}
}
