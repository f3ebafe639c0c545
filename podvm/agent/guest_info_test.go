package agent

import (
	"strings"
	"testing"

	"github.com/podvisor/podvisor/podvm/agent/agentpb"
)

func TestGuestInfo(t *testing.T) {
	f := newFixture(t)
	info, err := f.client.GuestInfo(ctxFor(t), &agentpb.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	if info.KernelRelease == "" || info.MemoryTotalBytes == 0 || info.MemoryAvailableBytes == 0 ||
		info.MemoryAvailableBytes > info.MemoryTotalBytes || info.UptimeSeconds <= 0 || info.Cpus == 0 ||
		info.AgentVersion != "test-version" {
		t.Errorf("GuestInfo = %v", info)
	}
}

func TestParseMeminfo(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		total, avai uint64
		wantErr     bool
	}{
		{"ok", "MemTotal:       2048 kB\nMemFree: 1 kB\nMemAvailable:   1024 kB\n", 2048 << 10, 1024 << 10, false},
		{"missing available", "MemTotal: 2048 kB\n", 0, 0, true},
		{"bad unit", "MemTotal: 2048 MB\nMemAvailable: 1 kB\n", 0, 0, true},
		{"overflow", "MemTotal: 18446744073709551615 kB\nMemAvailable: 1 kB\n", 0, 0, true},
		{"garbage", "MemTotal: x kB\nMemAvailable: 1 kB\n", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			total, avail, err := parseMeminfo(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr || total != tt.total || avail != tt.avai {
				t.Errorf("got %d %d %v", total, avail, err)
			}
		})
	}
}

func TestParseUptime(t *testing.T) {
	if got, err := parseUptime("12.34 56.78\n"); err != nil || got != 12.34 {
		t.Errorf("got %v %v", got, err)
	}
	if _, err := parseUptime(""); err == nil {
		t.Error("empty uptime accepted")
	}
}
