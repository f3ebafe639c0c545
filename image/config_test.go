package image

import (
	"errors"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	m := func(eps ...Endpoint) map[string][]Endpoint { return map[string][]Endpoint{"docker.io": eps} }
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"default", DefaultConfig(), true},
		{"host mirror", Config{Mirrors: m(Endpoint{URL: "mirror.local:5000"})}, true},
		{"https mirror skipping verify", Config{Mirrors: m(Endpoint{URL: "https://mirror.local", SkipVerify: true})}, true},
		{"http mirror, no upstream", Config{Mirrors: m(Endpoint{URL: "http://10.0.0.1:5000"}), NoUpstream: []string{"docker.io"}}, true},
		{"path in url", Config{Mirrors: m(Endpoint{URL: "https://mirror.local/v2"})}, false},
		{"bad scheme", Config{Mirrors: m(Endpoint{URL: "ftp://mirror.local"})}, false},
		{"https with plain http", Config{Mirrors: m(Endpoint{URL: "https://mirror.local", PlainHTTP: true})}, false},
		{"skip verify without tls", Config{Mirrors: m(Endpoint{URL: "mirror.local", PlainHTTP: true, SkipVerify: true})}, false},
		{"empty url", Config{Mirrors: m(Endpoint{})}, false},
		{"no endpoints", Config{Mirrors: map[string][]Endpoint{"docker.io": nil}}, false},
		{"bad registry key", Config{Mirrors: map[string][]Endpoint{"http://docker.io": {{URL: "m"}}}}, false},
		{"no upstream without mirrors", Config{NoUpstream: []string{"quay.io"}}, false},
		{"negative timeout", Config{PullTimeout: -1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("Validate = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestParseReference(t *testing.T) {
	tests := []struct{ in, want string }{
		{"busybox", "docker.io/library/busybox:latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36"},
		{"team/app", "docker.io/team/app:latest"},
		{"registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"},
		{"localhost:5000/x", "localhost:5000/x:latest"},
		{"busybox:1@sha256:" + sixtyFourA, "docker.io/library/busybox@sha256:" + sixtyFourA},
		{"quay.io/a/b@sha256:" + sixtyFourA, "quay.io/a/b@sha256:" + sixtyFourA},
		{"Busybox", ""},
		{"busybox:bad tag", ""},
		{sixtyFourA, ""},
	}
	for _, tc := range tests {
		got, err := parseReference(tc.in)
		if tc.want == "" {
			if !errors.Is(err, ErrInvalidReference) {
				t.Errorf("parseReference(%q) = %v, %v; want ErrInvalidReference", tc.in, got, err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("parseReference(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

const sixtyFourA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
