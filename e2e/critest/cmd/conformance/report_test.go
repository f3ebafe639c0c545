package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A trimmed ginkgo JSON report: suite nodes, a pass, a failure, a skip by
// the spec and a skip by the focus.
const sampleReport = `[{"SpecReports":[
 {"LeafNodeType":"BeforeSuite","State":"passed"},
 {"ContainerHierarchyTexts":["[k8s.io] PodSandbox","runtime should support basic operations on PodSandbox"],"LeafNodeType":"It","LeafNodeText":"runtime should support running PodSandbox [Conformance]","State":"passed"},
 {"ContainerHierarchyTexts":["[k8s.io] Security Context","NamespaceOption"],"LeafNodeType":"It","LeafNodeText":"runtime should support HostPID","State":"failed",
  "Failure":{"Message":"failed to create PodSandbox: hostPID\n  is not supported","Location":{"FileName":"/root/go/pkg/mod/sigs.k8s.io/cri-tools@v1.37.0/pkg/framework/util.go","LineNumber":241}}},
 {"ContainerHierarchyTexts":["[k8s.io] AppArmor"],"LeafNodeType":"It","LeafNodeText":"should enforce a profile","State":"skipped","Failure":{"Message":"AppArmor is not enabled"}},
 {"ContainerHierarchyTexts":["[k8s.io] Networking"],"LeafNodeType":"It","LeafNodeText":"runtime should support DNS config","State":"skipped"},
 {"LeafNodeType":"ReportAfterSuite","State":"passed"}
]}]`

func loadSample(t *testing.T) *report {
	t.Helper()
	p := filepath.Join(t.TempDir(), "report.json")
	if err := os.WriteFile(p, []byte(sampleReport), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := loadReport(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReportSummary(t *testing.T) {
	r := loadSample(t)
	var out bytes.Buffer
	if code := r.print(&out, 0); code != 1 {
		t.Errorf("exit status %d with a failed spec, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		"critest: 1 passed, 1 failed, 2 skipped of 4",
		"[k8s.io] Security Context NamespaceOption runtime should support HostPID",
	}
	if got := lines[len(lines)-2:]; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("summary ends\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(out.String(), "at sigs.k8s.io/cri-tools@v1.37.0/pkg/framework/util.go:241") {
		t.Errorf("failure location missing:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "AppArmor is not enabled") {
		t.Errorf("skip reason missing:\n%s", out.String())
	}
}

func TestCheckExpected(t *testing.T) {
	r := loadSample(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, list string
		code       int
		mention    string
	}{
		{"all passed", "# comment\n\n[k8s.io] PodSandbox runtime should support basic operations on PodSandbox runtime should support running PodSandbox [Conformance]\n", 0, "all 1 specs"},
		{"regression", "[k8s.io] Security Context NamespaceOption runtime should support HostPID\n", 1, "(failed)"},
		{"skipped", "[k8s.io] Networking runtime should support DNS config\n", 1, "(skipped)"},
		{"not run", "[k8s.io] Gone spec\n", 1, "did not run"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
		if err := os.WriteFile(p, []byte(tc.list), 0o644); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		code, err := r.checkExpected(&out, p)
		if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || !strings.Contains(out.String(), tc.mention) {
			t.Errorf("%s: status %d, output\n%s\nwant status %d mentioning %q", tc.name, code, out.String(), tc.code, tc.mention)
		}
	}
}

func TestPassedList(t *testing.T) {
	got := loadSample(t).passedList()
	want := "[k8s.io] PodSandbox runtime should support basic operations on PodSandbox runtime should support running PodSandbox [Conformance]\n"
	if got != want {
		t.Errorf("passed list %q, want %q", got, want)
	}
}

func TestPodChains(t *testing.T) {
	for c, want := range map[string]bool{
		"CNI-99c37516de0e4dbe0ed335de": true, "CNI-DN-99c37516de0e4dbe0ed33": true,
		"CNI-HOSTPORT-DNAT": false, "CNI-FORWARD": false, "CNI-ADMIN": false, "POSTROUTING": false,
	} {
		if isPodChain(c) != want {
			t.Errorf("isPodChain(%q) = %v", c, !want)
		}
	}
	line := `-A POSTROUTING -s 10.88.0.3/32 -m comment --comment "name: \"podvisor\" id: \"ab8bcb89c7a8f1fe7e4795bda326b6657daa842a03e80f7a791265b74fed5ffc\"" -j CNI-026eab4074ccd2b6f2733819`
	if m := commentIDRE.FindStringSubmatch(line); m == nil || m[1] != "ab8bcb89c7a8f1fe7e4795bda326b6657daa842a03e80f7a791265b74fed5ffc" {
		t.Errorf("pod ID not found in %s", line)
	}
	if j := jumpTarget(strings.Fields(line)); j != "CNI-026eab4074ccd2b6f2733819" {
		t.Errorf("jump target %q", j)
	}
}

func TestOurReservations(t *testing.T) {
	dir := t.TempDir()
	ours, theirs := strings.Repeat("a", 64), strings.Repeat("b", 64)
	files := map[string]string{"10.88.0.2": ours + "\r\neth0", "10.88.0.3": theirs + "\r\neth0", "lock": "", "last_reserved_ip.0": "10.88.0.3"}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got := ourReservations(dir, map[string]bool{ours: true})
	if len(got) != 1 || filepath.Base(got[0].path) != "10.88.0.2" {
		t.Errorf("our reservations %v, want just 10.88.0.2", got)
	}
}
