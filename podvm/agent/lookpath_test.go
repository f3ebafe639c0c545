package agent

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestResolveArgv0(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "tool")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, argv0 string
		env         []string
		want        string
		wantErr     error
	}{
		{"slash used as given", "./rel/x", nil, "./rel/x", nil},
		{"from request PATH", "tool", []string{"PATH=/nonexistent:" + dir}, exe, nil},
		{"first PATH wins", "tool", []string{"PATH=" + dir, "PATH=/nonexistent"}, exe, nil},
		{"default PATH", "tool", nil, exe, nil},
		{"relative PATH entries skipped", "tool", []string{"PATH=.:rel"}, "", ErrNotFound},
		{"not executable", "data", []string{"PATH=" + dir}, "", ErrNotFound},
		{"directory", "subdir", []string{"PATH=" + dir}, "", ErrNotFound},
		{"missing", "nothere", []string{"PATH=" + dir}, "", ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveArgv0(tt.argv0, tt.env, "/nonexistent:"+dir)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("got %q %v, want %q %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
