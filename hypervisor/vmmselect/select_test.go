package vmmselect

import (
	"context"
	"errors"
	"testing"
)

type fakeHost struct {
	ch, kvm bool
}

func (f fakeHost) cloudHypervisorAvailable() (bool, string) { return f.ch, "fake" }
func (f fakeHost) kvmBootsGuest(context.Context) (bool, string) {
	return f.kvm, "fake"
}

func TestDecide(t *testing.T) {
	tests := []struct {
		want     string
		ch, kvm  bool
		wantName string
		wantKVM  bool
		wantErr  error
	}{
		{Auto, true, true, CloudHypervisor, true, nil},
		{"", true, true, CloudHypervisor, true, nil},
		{Auto, true, false, QEMU, false, nil},
		{Auto, false, true, QEMU, true, nil},
		{Auto, false, false, QEMU, false, nil},
		{QEMU, true, true, QEMU, true, nil},
		{QEMU, false, false, QEMU, false, nil},
		{CloudHypervisor, true, true, CloudHypervisor, true, nil},
		{CloudHypervisor, false, true, "", false, ErrUnavailable},
		{CloudHypervisor, true, false, "", false, ErrUnavailable},
	}
	for _, tc := range tests {
		d, err := decide(context.Background(), tc.want, fakeHost{tc.ch, tc.kvm})
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%s ch=%v kvm=%v: err %v, want %v", tc.want, tc.ch, tc.kvm, err, tc.wantErr)
			}
			continue
		}
		if err != nil || d.name != tc.wantName || d.KVM != tc.wantKVM || d.Reason == "" {
			t.Errorf("%s ch=%v kvm=%v: got %+v, %v; want %s kvm=%v", tc.want, tc.ch, tc.kvm, d, err, tc.wantName, tc.wantKVM)
		}
	}
	if _, err := decide(context.Background(), "firecracker", fakeHost{}); err == nil {
		t.Error("unknown driver accepted")
	}
}
