package initsys

import (
	"strings"
	"testing"
)

// TestRequirePID1 checks the guard of Setup and PowerOff without calling
// them: if the guard were ever lost, calling them here as root would damage
// the machine running the tests.
func TestRequirePID1(t *testing.T) {
	if err := requirePID1("init"); err == nil || !strings.Contains(err.Error(), "not PID 1") {
		t.Fatalf("requirePID1 outside PID 1: %v", err)
	}
}
