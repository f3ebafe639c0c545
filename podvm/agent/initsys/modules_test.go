package initsys

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseModuleList(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Module
		wantErr string
	}{
		{"empty", "", nil, ""},
		{"order kept, comments and blanks skipped", `
# virtio first
/lib/modules/6.1/kernel/drivers/virtio/virtio_ring.ko
  /lib/modules/6.1/kernel/drivers/virtio/virtio.ko

/lib/modules/6.1/kernel/fs/fuse/virtiofs.ko.xz
`, []Module{
			{Path: "/lib/modules/6.1/kernel/drivers/virtio/virtio_ring.ko"},
			{Path: "/lib/modules/6.1/kernel/drivers/virtio/virtio.ko"},
			{Path: "/lib/modules/6.1/kernel/fs/fuse/virtiofs.ko.xz"},
		}, ""},
		{"parameters", "/m/a.ko  opt=1   other=x\n", []Module{{Path: "/m/a.ko", Params: "opt=1 other=x"}}, ""},
		{"relative path", "/m/a.ko\nb.ko\n", nil, "line 2"},
		{"unclean path", "/m/../a.ko\n", nil, "line 1"},
		{"NUL", "/m/a.ko x=\x00\n", nil, "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseModuleList(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestModuleCompressed(t *testing.T) {
	for path, want := range map[string]bool{
		"/m/a.ko": false, "/m/a.ko.xz": true, "/m/a.ko.zst": true, "/m/a.ko.gz": true,
	} {
		if got := (Module{Path: path}).Compressed(); got != want {
			t.Errorf("%s: Compressed() = %v", path, got)
		}
	}
}

func TestLoadModulesMissingList(t *testing.T) {
	if err := LoadModules(t.TempDir() + "/none"); err != nil {
		t.Errorf("missing list: %v", err)
	}
}
