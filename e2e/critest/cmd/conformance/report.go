package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// The parts of ginkgo's JSON report (types.Report) the harness reads.
type ginkgoReport struct {
	SpecReports []struct {
		ContainerHierarchyTexts []string
		LeafNodeType            string
		LeafNodeText            string
		State                   string
		RunTime                 time.Duration
		Failure                 struct {
			Message  string
			Location struct {
				FileName   string
				LineNumber int
			}
		}
	}
}

// spec is one It of the suite.
type spec struct {
	name    string
	state   string // passed, failed, skipped, pending, panicked, interrupted, aborted, timedout
	message string // failure or skip reason
	where   string
}

type report struct{ specs []spec }

// loadReport reads ginkgo's JSON report, keeping the It nodes (suite
// set-up and tear-down nodes are not specs).
func loadReport(path string) (*report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var suites []ginkgoReport
	if err := json.Unmarshal(b, &suites); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r := &report{}
	for _, s := range suites {
		for _, sr := range s.SpecReports {
			if sr.LeafNodeType != "It" {
				continue
			}
			sp := spec{name: specName(sr.ContainerHierarchyTexts, sr.LeafNodeText), state: sr.State, message: sr.Failure.Message}
			if sr.Failure.Location.FileName != "" {
				sp.where = fmt.Sprintf("%s:%d", trimModPath(sr.Failure.Location.FileName), sr.Failure.Location.LineNumber)
			}
			r.specs = append(r.specs, sp)
		}
	}
	if len(r.specs) == 0 {
		return nil, fmt.Errorf("%s: no specs", path)
	}
	sort.Slice(r.specs, func(i, j int) bool { return r.specs[i].name < r.specs[j].name })
	return r, nil
}

// specName is the spec's full text as ginkgo prints it, e.g.
// "[sig-node] PodSandbox runtime should support basic operations on PodSandbox".
func specName(containers []string, leaf string) string {
	return strings.Join(append(append([]string{}, containers...), leaf), " ")
}

func trimModPath(f string) string {
	if i := strings.Index(f, "/sigs.k8s.io/"); i >= 0 {
		return f[i+1:]
	}
	return f
}

func (s spec) failed() bool {
	switch s.state {
	case "passed", "skipped", "pending":
		return false
	}
	return true
}

// print writes the summary line, the failing specs with their error and
// the specs skipped for a reason, and returns the status a run without an
// expected-pass list exits with.
func (r *report) print(w io.Writer, elapsed time.Duration) int {
	var passed, failed, skipped int
	var fails, reasoned []spec
	for _, s := range r.specs {
		switch {
		case s.state == "passed":
			passed++
		case s.failed():
			failed++
			fails = append(fails, s)
		default:
			skipped++
			if s.message != "" {
				reasoned = append(reasoned, s)
			}
		}
	}
	fmt.Fprintln(w)
	if len(reasoned) > 0 {
		fmt.Fprintln(w, "skipped by the spec itself:")
		for _, s := range reasoned {
			fmt.Fprintf(w, "  %s\n      %s\n", s.name, oneLine(s.message, 200))
		}
	}
	if len(fails) > 0 {
		fmt.Fprintln(w, "failed:")
		for _, s := range fails {
			fmt.Fprintf(w, "  %s [%s]\n      %s\n", s.name, s.state, oneLine(s.message, 400))
			if s.where != "" {
				fmt.Fprintf(w, "      at %s\n", s.where)
			}
		}
	}
	fmt.Fprintf(w, "wall time %s\n", elapsed.Round(time.Second))
	fmt.Fprintf(w, "critest: %d passed, %d failed, %d skipped of %d\n", passed, failed, skipped, len(r.specs))
	for _, s := range fails {
		fmt.Fprintln(w, s.name)
	}
	if failed > 0 {
		return 1
	}
	return 0
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// passedList is the names of the passing specs, one per line.
func (r *report) passedList() string {
	var b strings.Builder
	for _, s := range r.specs {
		if s.state == "passed" {
			b.WriteString(s.name + "\n")
		}
	}
	return b.String()
}

// checkExpected reads a list of spec names (blank lines and #-comments
// ignored) and reports each that did not pass. It returns 1 if any did not,
// so a spec that passed before and fails now fails CI.
func (r *report) checkExpected(w io.Writer, path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 2, err
	}
	defer f.Close()
	byName := map[string]spec{}
	for _, s := range r.specs {
		byName[s.name] = s
	}
	var want []string
	expected := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		want = append(want, line)
		expected[line] = true
	}
	if err := sc.Err(); err != nil {
		return 2, err
	}
	var missing []string
	for _, name := range want {
		s, ok := byName[name]
		switch {
		case !ok:
			missing = append(missing, name+" (did not run: not in the suite)")
		case s.state != "passed":
			missing = append(missing, fmt.Sprintf("%s (%s)", name, s.state))
		}
	}
	var newly []string
	for _, s := range r.specs {
		if s.state == "passed" && !expected[s.name] {
			newly = append(newly, s.name)
		}
	}
	if len(newly) > 0 {
		fmt.Fprintf(w, "passing but not in %s (add them):\n", path)
		for _, n := range newly {
			fmt.Fprintln(w, "  "+n)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(w, "expected to pass (%s) but did not:\n", path)
		for _, m := range missing {
			fmt.Fprintln(w, "  "+m)
		}
		return 1, nil
	}
	fmt.Fprintf(w, "all %d specs of %s passed\n", len(want), path)
	return 0, nil
}
