package initsys

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

type fixtureEntry struct {
	name string
	make func(t *testing.T, path string)
}

func file(content []byte) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadAndRemoveSecrets(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("not a secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		entries []fixtureEntry
		want    map[string][]byte
		wantErr string
	}{
		{"empty", nil, map[string][]byte{}, ""},
		{"files", []fixtureEntry{
			{"ca.pem", file([]byte("CA"))},
			{"key.pem", file([]byte("KEY"))},
			{"empty", file(nil)},
			{"max", file(bytes.Repeat([]byte{1}, MaxSecretSize))},
		}, map[string][]byte{"ca.pem": []byte("CA"), "key.pem": []byte("KEY"), "empty": {},
			"max": bytes.Repeat([]byte{1}, MaxSecretSize)}, ""},
		{"symlink", []fixtureEntry{
			{"ca.pem", file([]byte("CA"))},
			{"link", func(t *testing.T, p string) {
				if err := os.Symlink(outside, p); err != nil {
					t.Fatal(err)
				}
			}},
		}, nil, "link"},
		{"oversize", []fixtureEntry{{"big", file(make([]byte, MaxSecretSize+1))}}, nil, "big"},
		{"nested dir", []fixtureEntry{
			{"sub", func(t *testing.T, p string) {
				if err := os.MkdirAll(filepath.Join(p, "deeper"), 0o700); err != nil {
					t.Fatal(err)
				}
				file([]byte("x"))(t, filepath.Join(p, "deeper", "f"))
			}},
		}, nil, "sub"},
		{"fifo", []fixtureEntry{
			{"fifo", func(t *testing.T, p string) {
				if err := syscall.Mkfifo(p, 0o600); err != nil {
					t.Fatal(err)
				}
			}},
		}, nil, "fifo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keys")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			for _, e := range tt.entries {
				e.make(t, filepath.Join(dir, e.name))
			}
			got, err := ReadAndRemoveSecrets(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || got != nil {
					t.Errorf("got %d secrets, err %v; want none and an error naming %q", len(got), err, tt.wantErr)
				}
			} else if err != nil || !equalSecrets(got, tt.want) {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
			// Refused or not, the directory is gone, and nothing outside it
			// was touched through a link.
			if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("secrets dir still there: %v", err)
			}
			if _, err := os.Stat(outside); err != nil {
				t.Errorf("file outside the dir: %v", err)
			}
		})
	}
}

func TestReadAndRemoveSecretsDirErrors(t *testing.T) {
	base := t.TempDir()
	if _, err := ReadAndRemoveSecrets(filepath.Join(base, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing dir: %v", err)
	}
	real := filepath.Join(base, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	file([]byte("x"))(t, filepath.Join(real, "k"))
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadAndRemoveSecrets(link); err == nil {
		t.Error("a symlinked dir was followed")
	}
	if _, err := os.Stat(filepath.Join(real, "k")); err != nil {
		t.Errorf("the link's target was touched: %v", err)
	}
}

func TestReadAndRemoveSecretsTooMany(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for i := range maxSecretFiles + 1 {
		file([]byte("x"))(t, filepath.Join(dir, strings.Repeat("k", i+1)))
	}
	if got, err := ReadAndRemoveSecrets(dir); err == nil || got != nil {
		t.Errorf("got %d secrets, err %v", len(got), err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("secrets dir still there: %v", err)
	}
}

func equalSecrets(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}
