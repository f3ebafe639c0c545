package images

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/podvisor/podvisor/e2e/testimage"
)

// fakeUserland stands in for Userland: the catalogue's invariants do not
// depend on the Debian tree.
var fakeUserland = Layer{
	{Path: "bin/busybox", Data: []byte("busybox"), Mode: 0o755},
	{Path: "bin/sh", HardLink: "bin/busybox"},
	{Path: "bin/ls", HardLink: "bin/busybox"},
	{Path: "etc/passwd", Data: []byte(passwd)},
	{Path: "etc/group", Data: []byte(group)},
}

var fakePrograms = Programs{Nginx: []byte("nginx"), Pause: []byte("pause"), NNP: []byte("nnp")}

func catalogByRef(t *testing.T) map[string]v1.Image {
	t.Helper()
	imgs, err := Catalog(fakeUserland, fakePrograms)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]v1.Image{}
	for _, im := range imgs {
		for _, r := range im.Refs {
			if _, dup := out[r]; dup {
				t.Fatalf("%s listed twice", r)
			}
			out[r] = im.Img
		}
	}
	return out
}

func digest(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// TestCatalogRelations checks the tag and digest relationships the image
// specs rely on.
func TestCatalogRelations(t *testing.T) {
	byRef := catalogByRef(t)
	d := func(ref string) string {
		img, ok := byRef[ref]
		if !ok {
			t.Fatalf("%s is not in the catalogue", ref)
		}
		return digest(t, img)
	}
	same := [][]string{
		{criTools + "test-image-tags:1", criTools + "test-image-tags:2", criTools + "test-image-tags:3"},
		{"registry.k8s.io/pause:3.9", "k8s.gcr.io/pause:3.9"},
	}
	for _, refs := range same {
		for _, r := range refs[1:] {
			if d(r) != d(refs[0]) {
				t.Errorf("%s and %s must be one image", r, refs[0])
			}
		}
	}
	distinct := []string{
		criTools + "test-image-1:latest", criTools + "test-image-2:latest", criTools + "test-image-3:latest",
		criTools + "test-image-latest:latest", criTools + "test-image-tag:test", criTools + "test-image-tag:all",
		criTools + "test-image-tags:1", BusyboxRef, HttpdRef, NginxRef, NoNewPrivsRef,
	}
	for _, tag := range PauseTags {
		distinct = append(distinct, "registry.k8s.io/pause:"+tag)
	}
	seen := map[string]string{}
	for _, r := range distinct {
		if prev, ok := seen[d(r)]; ok {
			t.Errorf("%s and %s must be different images", r, prev)
		}
		seen[d(r)] = r
	}
}

// TestCatalogUsers checks the image users of the image-user and
// predefined-group images against images/build of cri-tools.
func TestCatalogUsers(t *testing.T) {
	byRef := catalogByRef(t)
	for ref, want := range map[string]string{
		criTools + "test-image-user-uid:latest":            "1002",
		criTools + "test-image-user-username:latest":       "www-data",
		criTools + "test-image-user-uid-group:latest":      "1003:1004",
		criTools + "test-image-user-username-group:latest": "www-data:1004",
		criTools + "test-image-predefined-group:latest":    "1000",
	} {
		cf, err := byRef[ref].ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Config.User != want {
			t.Errorf("%s: user %q, want %q", ref, cf.Config.User, want)
		}
	}
	files := flatten(t, byRef[criTools+"test-image-predefined-group:latest"])
	if g := string(files["etc/group"].data); !strings.Contains(g, "\ngroup-defined-in-image:x:50000:default-user\n") {
		t.Errorf("predefined-group image's /etc/group lacks group 50000 with default-user:\n%s", g)
	}
	if p := string(files["etc/passwd"].data); !strings.Contains(p, "\ndefault-user:x:1000:1000:") {
		t.Errorf("predefined-group image's /etc/passwd lacks default-user 1000:\n%s", p)
	}
	for _, u := range []string{"www-data:x:33:", "nobody:x:65534:"} {
		if p := string(flatten(t, byRef[BusyboxRef])["etc/passwd"].data); !strings.Contains(p, "\n"+u) {
			t.Errorf("busybox image has no %s user", u)
		}
	}
}

func TestCatalogPrograms(t *testing.T) {
	byRef := catalogByRef(t)
	nnp := flatten(t, byRef[NoNewPrivsRef])["usr/local/bin/nnp"]
	if nnp.mode&0o4000 == 0 || nnp.uid != 0 {
		t.Errorf("nnp must be setuid root, is mode %o uid %d", nnp.mode, nnp.uid)
	}
	cf, _ := byRef[NoNewPrivsRef].ConfigFile()
	if got := cf.Config.Entrypoint; len(got) != 1 || got[0] != "/usr/local/bin/nnp" {
		t.Errorf("nonewprivs entrypoint %q", got)
	}
	for ref, port := range map[string]string{NginxRef: "listen       80;", criTools + "hostnet-nginx-amd64:latest": "listen       12003;"} {
		files := flatten(t, byRef[ref])
		if !bytes.Equal(files["usr/sbin/nginx"].data, fakePrograms.Nginx) {
			t.Errorf("%s: no nginx stand-in at /usr/sbin/nginx", ref)
		}
		if !strings.Contains(string(files["etc/nginx/conf.d/default.conf"].data), port) {
			t.Errorf("%s: config does not say %q", ref, port)
		}
	}
	httpd := flatten(t, byRef[HttpdRef])
	if !strings.Contains(string(httpd["usr/local/bin/httpd-foreground"].data), "httpd -f") {
		t.Error("httpd image does not run busybox httpd in the foreground")
	}
	files := flatten(t, byRef[BusyboxRef])
	if ls := files["bin/ls"]; ls.hardlink != "bin/busybox" {
		t.Errorf("/bin/ls must be a hard link to /bin/busybox, is %+v", ls)
	}
}

// TestPushServesEveryReference pushes the catalogue and pulls every
// reference back by its mirror path.
func TestPushServesEveryReference(t *testing.T) {
	imgs, err := Catalog(fakeUserland, fakePrograms)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := testimage.StartRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if err := Push(reg, imgs); err != nil {
		t.Fatal(err)
	}
	for _, im := range imgs {
		want := digest(t, im.Img)
		for _, r := range im.Refs {
			rt, err := repoTag(r)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := name.ParseReference(reg.Host+"/"+rt, name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			desc, err := remote.Get(ref)
			if err != nil {
				t.Fatalf("%s: %v", r, err)
			}
			if desc.Digest.String() != want {
				t.Errorf("%s served as %s, want %s", r, desc.Digest, want)
			}
		}
	}
	hosts, err := Hosts(imgs)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(hosts, " "); got != "gcr.io k8s.gcr.io registry.k8s.io" {
		t.Errorf("hosts %q", got)
	}
}

func TestPushRefusesClash(t *testing.T) {
	la, _ := Layer{{Path: "a"}}.Compile()
	lb, _ := Layer{{Path: "b"}}.Compile()
	a, _ := Build(Config{}, la)
	b, _ := Build(Config{}, lb)
	reg, err := testimage.StartRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	err = Push(reg, []Image{{Refs: []string{"registry.k8s.io/x:1"}, Img: a}, {Refs: []string{"k8s.gcr.io/x:1"}, Img: b}})
	if err == nil {
		t.Fatal("two images on one mirror path were accepted")
	}
}

func TestHardLinkNeedsRegularTarget(t *testing.T) {
	_, err := Layer{{Path: "bin/ls", HardLink: "bin/busybox"}}.Compile()
	if err == nil {
		t.Fatal("hard link to a missing file was accepted")
	}
}

type file struct {
	data     []byte
	mode     int64
	uid      int
	hardlink string
}

// flatten reads an image's layers into a path -> file map, upper layers
// winning.
func flatten(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]file{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(tr)
			f := file{data: data, mode: h.Mode, uid: h.Uid}
			if h.Typeflag == tar.TypeLink {
				f.hardlink = h.Linkname
			}
			out[strings.TrimSuffix(h.Name, "/")] = f
		}
		rc.Close()
	}
	return out
}
