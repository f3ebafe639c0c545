package image

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// testRegistry is ggcr's in-memory registry on 127.0.0.1 behind a handler
// that counts requests and can demand basic auth, delay manifests or serve
// corrupted blobs.
type testRegistry struct {
	srv   *httptest.Server
	host  string
	inner http.Handler

	mu            sync.Mutex
	manifestGets  int
	blobGets      int
	user, pass    string
	manifestDelay time.Duration
	corrupt       map[string][]byte // blob digest → body served instead
}

func newTestRegistry(t testing.TB) *testRegistry {
	t.Helper()
	r := &testRegistry{
		inner:   registry.New(registry.Logger(log.New(io.Discard, "", 0))),
		corrupt: map[string][]byte{},
	}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	r.host = strings.TrimPrefix(r.srv.URL, "http://")
	return r
}

func (r *testRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	user, pass, delay := r.user, r.pass, r.manifestDelay
	isManifest := req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/manifests/")
	isBlob := req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/")
	if isManifest {
		r.manifestGets++
	}
	if isBlob {
		r.blobGets++
	}
	var body []byte
	if isBlob {
		d := req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:]
		body = r.corrupt[d]
	}
	r.mu.Unlock()
	if user != "" {
		u, p, ok := req.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"auth"}]}`, http.StatusUnauthorized)
			return
		}
	}
	if isManifest && delay > 0 {
		time.Sleep(delay)
	}
	if body != nil {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
		return
	}
	r.inner.ServeHTTP(w, req)
}

func (r *testRegistry) requireAuth(user, pass string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.user, r.pass = user, pass
}

func (r *testRegistry) counts() (manifests, blobs int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.manifestGets, r.blobGets
}

func (r *testRegistry) push(t testing.TB, ref string, img v1.Image) string {
	t.Helper()
	tag, err := name.ParseReference(r.host + "/" + ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func (r *testRegistry) pushIndex(t testing.TB, ref string, idx v1.ImageIndex) string {
	t.Helper()
	tag, err := name.ParseReference(r.host + "/" + ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatalf("push index %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// tarEntry describes one entry of a hand-made layer.
type tarEntry struct {
	name   string
	typ    byte // tar.TypeReg when zero
	body   string
	link   string
	mode   int64
	uid    int
	gid    int
	xattrs map[string]string
}

func tarBytes(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:     e.name,
			Typeflag: e.typ,
			Linkname: e.link,
			Mode:     e.mode,
			Uid:      e.uid,
			Gid:      e.gid,
			ModTime:  time.Unix(1700000000, 0),
			Format:   tar.FormatPAX,
		}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
			if hdr.Typeflag == tar.TypeDir {
				hdr.Mode = 0o755
			}
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		for k, v := range e.xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func layerOf(t testing.TB, entries ...tarEntry) v1.Layer {
	t.Helper()
	b := tarBytes(t, entries)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// imageOf builds a linux/amd64 image from layers with the given config.
func imageOf(t testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = cfg
	cf.Created = v1.Time{Time: time.Unix(1700000000, 0).UTC()}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// simpleImage is a one-layer image whose file content makes it unique.
func simpleImage(t testing.TB, marker string) v1.Image {
	return imageOf(t, v1.Config{Cmd: []string{"/bin/true"}},
		layerOf(t, tarEntry{name: "etc/", typ: tar.TypeDir}, tarEntry{name: "etc/marker", body: marker}))
}

func imageID(t testing.TB, img v1.Image) string {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func newTestStore(t testing.TB, cfg Config) (*Store, string) {
	t.Helper()
	root := t.TempDir()
	s, err := Open(root, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, root
}

// requireRoot skips tests that chown files or set trusted.* xattrs.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: sets file owners and trusted.overlay xattrs")
	}
}

var bg = context.Background
