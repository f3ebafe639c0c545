package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/podvisor/podvisor/cri/errdefs"
)

// rec is a record without its timestamp, for comparisons.
type rec struct {
	stream  Stream
	partial bool
	content string
}

func (r rec) String() string {
	tag := tagFull
	if r.partial {
		tag = tagPartial
	}
	c := r.content
	if len(c) > 20 {
		c = fmt.Sprintf("%s…(%d bytes)", c[:10], len(c))
	}
	return fmt.Sprintf("%s %s %q", r.stream, tag, c)
}

func full(s Stream, c string) rec    { return rec{s, false, c} }
func partial(s Stream, c string) rec { return rec{s, true, c} }

// readRecords parses every line of the file at path, checking timestamps.
func readRecords(t *testing.T, path string) []rec {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out  []rec
		prev time.Time
	)
	sc := NewScanner(f)
	for sc.Scan() {
		r := sc.Record()
		if r.Time.Before(prev) {
			t.Errorf("record %d: time %v before previous %v", len(out), r.Time, prev)
		}
		if time.Since(r.Time) > time.Minute || r.Time.Location() != time.UTC {
			t.Errorf("record %d: implausible timestamp %v", len(out), r.Time)
		}
		prev = r.Time
		out = append(out, rec{r.Stream, r.Partial, string(r.Content)})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

func equalRecs(t *testing.T, got, want []rec) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("record %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func openTemp(t *testing.T, opts Options) *Writer {
	t.Helper()
	w, err := Open(filepath.Join(t.TempDir(), "0.log"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// chunked returns its input in reads of n bytes.
type chunked struct {
	b []byte
	n int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := min(c.n, len(p), len(c.b))
	copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}

func TestCopyLines(t *testing.T) {
	const K = DefaultMaxLineSize
	x := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name string
		in   string
		want []rec
	}{
		{"empty", "", nil},
		{"lines", "a\nbb\n\nccc\n", []rec{full(Stdout, "a"), full(Stdout, "bb"), full(Stdout, ""), full(Stdout, "ccc")}},
		{"eof without newline", "a\nbc", []rec{full(Stdout, "a"), partial(Stdout, "bc")}},
		{"crlf ends a line", "a\r\nb\r\n\r\n", []rec{full(Stdout, "a"), full(Stdout, "b"), full(Stdout, "")}},
		{"other cr kept", "a\rb\n\r\r\nc\r", []rec{full(Stdout, "a\rb"), full(Stdout, "\r"), partial(Stdout, "c\r")}},
		{"exactly max", x(K) + "\n", []rec{full(Stdout, x(K))}},
		{"exactly max with crlf", x(K) + "\r\n", []rec{full(Stdout, x(K))}},
		{"max plus cr then text", x(K) + "\ry\n", []rec{partial(Stdout, x(K)), full(Stdout, "\ry")}},
		{"max plus one", x(K+1) + "\n", []rec{partial(Stdout, x(K)), full(Stdout, "x")}},
		{"max minus one", x(K-1) + "\n", []rec{full(Stdout, x(K-1))}},
		{"twice max", x(2*K) + "\n", []rec{partial(Stdout, x(K)), full(Stdout, x(K))}},
		{"twice max plus one", x(2*K+1) + "\n", []rec{partial(Stdout, x(K)), partial(Stdout, x(K)), full(Stdout, "x")}},
		{"max at eof", x(K), []rec{partial(Stdout, x(K))}},
		{"max plus one at eof", x(K + 1), []rec{partial(Stdout, x(K)), partial(Stdout, "x")}},
		{"max plus cr at eof", x(K) + "\r", []rec{partial(Stdout, x(K)), partial(Stdout, "\r")}},
		{"long then short", x(K+2) + "\nab\n", []rec{partial(Stdout, x(K)), full(Stdout, "xx"), full(Stdout, "ab")}},
	}
	readers := map[string]func(string) io.Reader{
		"whole":   func(s string) io.Reader { return strings.NewReader(s) },
		"bytes":   func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"halves":  func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) },
		"K-1":     func(s string) io.Reader { return &chunked{[]byte(s), K - 1} },
		"K":       func(s string) io.Reader { return &chunked{[]byte(s), K} },
		"K+1":     func(s string) io.Reader { return &chunked{[]byte(s), K + 1} },
		"dataEOF": func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) },
	}
	for _, tt := range tests {
		for rname, mk := range readers {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				w := openTemp(t, Options{})
				if err := w.Copy(Stdout, mk(tt.in)); err != nil {
					t.Fatal(err)
				}
				equalRecs(t, readRecords(t, w.Path()), tt.want)
			})
		}
	}
}

func TestCopyVeryLongLine(t *testing.T) {
	const K = DefaultMaxLineSize
	line := make([]byte, 1<<20)
	for i := range line {
		line[i] = 'a' + byte(i%26)
	}
	w := openTemp(t, Options{})
	in := append(append([]byte{}, line...), "!\nend\n"...)
	if err := w.Copy(Stderr, bytes.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	var want []rec
	for i := 0; i < len(line); i += K {
		want = append(want, partial(Stderr, string(line[i:i+K])))
	}
	want = append(want, full(Stderr, "!"), full(Stderr, "end"))
	equalRecs(t, readRecords(t, w.Path()), want)

	f, err := os.Open(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	msgs, err := ReadMessages(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || string(msgs[0].Content) != string(line)+"!" || !msgs[0].Complete {
		t.Fatalf("messages: %d, first %d bytes", len(msgs), len(msgs[0].Content))
	}
}

func TestCopySmallerLimit(t *testing.T) {
	w := openTemp(t, Options{MaxLineSize: 3})
	if err := w.Copy(Stdout, strings.NewReader("abcdefg\nabc\r\nabcd")); err != nil {
		t.Fatal(err)
	}
	equalRecs(t, readRecords(t, w.Path()), []rec{
		partial(Stdout, "abc"), partial(Stdout, "def"), full(Stdout, "g"),
		full(Stdout, "abc"),
		partial(Stdout, "abc"), partial(Stdout, "d"),
	})
}

// TestRunInterleaves writes both streams at once: every line is a whole
// record and each stream's lines keep their order.
func TestRunInterleaves(t *testing.T) {
	w := openTemp(t, Options{MaxLineSize: 100})
	const n = 2000
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	produce := func(pw *io.PipeWriter, name string) {
		for i := range n {
			// Lines of varying length, some longer than the limit,
			// written in pieces that straddle line ends.
			line := fmt.Sprintf("%s %d %s\n", name, i, strings.Repeat("#", i%250))
			half := len(line) / 2
			pw.Write([]byte(line[:half]))
			pw.Write([]byte(line[half:]))
		}
		pw.Close()
	}
	go produce(outW, "out")
	go produce(errW, "err")
	if err := w.Run(outR, errR); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	msgs, err := ReadMessages(f)
	if err != nil {
		t.Fatal(err)
	}
	next := map[Stream]int{}
	for _, m := range msgs {
		name := map[Stream]string{Stdout: "out", Stderr: "err"}[m.Stream]
		i := next[m.Stream]
		want := fmt.Sprintf("%s %d %s", name, i, strings.Repeat("#", i%250))
		if string(m.Content) != want || !m.Complete {
			t.Fatalf("%s message %d: got %q (complete %v), want %q", m.Stream, i, m.Content, m.Complete, want)
		}
		next[m.Stream]++
	}
	if next[Stdout] != n || next[Stderr] != n {
		t.Fatalf("got %v messages, want %d per stream", next, n)
	}
	if err := w.Reopen(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Reopen after Run: %v, want ErrClosed", err)
	}
}

func TestRunTerminalHasOnlyStdout(t *testing.T) {
	w := openTemp(t, Options{})
	if err := w.Run(strings.NewReader("$ ls\r\nfoo\r\n"), nil); err != nil {
		t.Fatal(err)
	}
	equalRecs(t, readRecords(t, w.Path()), []rec{full(Stdout, "$ ls"), full(Stdout, "foo")})
}

// TestReopenAfterRename rotates the log the way kubelet does while both
// streams are being written: no record is lost, cut or duplicated.
func TestReopenAfterRename(t *testing.T) {
	w := openTemp(t, Options{})
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- w.Run(outR, errR) }()

	const rotations = 20
	var produced sync.WaitGroup
	writeLines := func(pw *io.PipeWriter, name string, from, to int) {
		for i := from; i < to; i++ {
			fmt.Fprintf(pw, "%s %d\n", name, i)
		}
	}
	var rotated []string
	for r := range rotations {
		produced.Add(2)
		go func() { defer produced.Done(); writeLines(outW, "out", r*50, (r+1)*50) }()
		go func() { defer produced.Done(); writeLines(errW, "err", r*50, (r+1)*50) }()
		produced.Wait()
		name := fmt.Sprintf("%s.%d", w.Path(), r)
		if err := os.Rename(w.Path(), name); err != nil {
			t.Fatal(err)
		}
		rotated = append(rotated, name)
		if err := w.Reopen(); err != nil {
			t.Fatal(err)
		}
	}
	writeLines(outW, "out", rotations*50, rotations*50+1)
	outW.Close()
	errW.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	next := map[Stream]int{}
	for _, path := range append(rotated, w.Path()) {
		for _, r := range readRecords(t, path) {
			name := map[Stream]string{Stdout: "out", Stderr: "err"}[r.stream]
			if want := fmt.Sprintf("%s %d", name, next[r.stream]); r.content != want || r.partial {
				t.Fatalf("%s: got %v, want %q", path, r, want)
			}
			next[r.stream]++
		}
	}
	if next[Stdout] != rotations*50+1 || next[Stderr] != rotations*50 {
		t.Fatalf("got %v lines", next)
	}
	// Output went on while the files were renamed, but every file got
	// some of it.
	for _, path := range rotated {
		if len(readRecords(t, path)) == 0 {
			t.Errorf("%s is empty", path)
		}
	}
}

// TestConcurrentWriters races several copies of the same stream with
// rotations: every line of every file is still a whole record.
func TestConcurrentWriters(t *testing.T) {
	w := openTemp(t, Options{MaxLineSize: 64})
	var wg sync.WaitGroup
	const writers, lines = 8, 300
	for i := range writers {
		wg.Go(func() {
			var b strings.Builder
			for j := range lines {
				fmt.Fprintf(&b, "w%d-%d-%s\n", i, j, strings.Repeat("z", j%100))
			}
			if err := w.Copy(Stream([]Stream{Stdout, Stderr}[i%2]), iotest.HalfReader(strings.NewReader(b.String()))); err != nil {
				t.Error(err)
			}
		})
	}
	var rotated []string
	stop := make(chan struct{})
	rotatorDone := make(chan struct{})
	go func() {
		defer close(rotatorDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("%s.%d", w.Path(), i)
			if err := os.Rename(w.Path(), name); err != nil {
				t.Error(err)
				return
			}
			rotated = append(rotated, name)
			if err := w.Reopen(); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	close(stop)
	<-rotatorDone
	total := 0
	for _, path := range append(rotated, w.Path()) {
		total += len(readRecords(t, path))
	}
	// A line of n bytes takes ceil(n/64) records, at least one.
	want := 0
	for i := range writers {
		for j := range lines {
			n := len(fmt.Sprintf("w%d-%d-%s", i, j, strings.Repeat("z", j%100)))
			want += max(1, (n+63)/64)
		}
	}
	if total != want {
		t.Fatalf("%d records over %d files, want %d", total, len(rotated)+1, want)
	}
}

func TestOpenCreatesDirAndAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pod_ns_uid", "ctr", "0.log")
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(strings.NewReader("one\ntw"), nil); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// The umask may take bits away, never add them.
	if mode := fi.Mode().Perm(); mode&^fileMode != 0 || mode&0o600 != 0o600 {
		t.Errorf("mode %v, want %v", mode, fileMode)
	}
	// A restarted daemon resumes on the same file: the partial line it
	// left is completed by the next record, nothing is truncated.
	w, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(strings.NewReader("o\n"), strings.NewReader("err\n")); err != nil {
		t.Fatal(err)
	}
	recs := readRecords(t, path)
	if len(recs) != 4 || recs[0] != full(Stdout, "one") || recs[1] != partial(Stdout, "tw") {
		t.Fatalf("got %v", recs)
	}
	f, _ := os.Open(path)
	defer f.Close()
	msgs, err := ReadMessages(f)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, string(m.Stream)+":"+string(m.Content))
	}
	if g := strings.Join(got, ","); g != "stdout:one,stdout:two,stderr:err" && g != "stdout:one,stderr:err,stdout:two" {
		t.Fatalf("messages %s", g)
	}
}

// TestOpenEndsTornRecord: a daemon killed in the middle of a write left half
// a record; the next record must start on its own line.
func TestOpenEndsTornRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	torn := "2026-01-02T03:04:05.123456789Z stdout F whole\n2026-01-02T03:04:05.2Z stdout F ha"
	if err := os.WriteFile(path, []byte(torn), 0o640); err != nil {
		t.Fatal(err)
	}
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(strings.NewReader("next\n"), nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[1], " ha") || !strings.HasSuffix(lines[2], " stdout F next") {
		t.Fatalf("file:\n%s", b)
	}
	// Opening a file that ends cleanly adds nothing.
	w, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if b2, _ := os.ReadFile(path); !bytes.Equal(b, b2) {
		t.Fatalf("reopening changed the file:\n%s", b2)
	}
}

func TestOpenRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "0.log")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(link, Options{}); !errors.Is(err, syscall.ELOOP) {
		t.Fatalf("Open through a symlink: %v, want ELOOP", err)
	}
}

func TestWriteErrorsDrainTheStream(t *testing.T) {
	// /dev/full fails every write with ENOSPC.
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full:", err)
	}
	w, err := Open("/dev/full", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r := strings.NewReader(strings.Repeat("line\n", 1000))
	err = w.Copy(Stdout, r)
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "1000 stdout records dropped") {
		t.Fatalf("Copy: %v, want ENOSPC with 1000 records dropped", err)
	}
	if r.Len() != 0 {
		t.Fatalf("%d bytes left unread", r.Len())
	}
}

func TestClosedWriter(t *testing.T) {
	w := openTemp(t, Options{})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := w.Reopen(); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("Reopen: %v", err)
	}
	if err := w.Reopen(); errdefs.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Reopen: %v is %v, want FailedPrecondition", err, errdefs.Code(err))
	}
	r := strings.NewReader(strings.Repeat("x\n", 100000))
	if err := w.Copy(Stdout, r); !errors.Is(err, ErrClosed) {
		t.Fatalf("Copy: %v", err)
	}
	if r.Len() == 0 {
		t.Fatal("Copy kept reading after the writer was closed")
	}
}

func TestOpenOptions(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "0.log"), Options{MaxLineSize: -1}); err == nil {
		t.Fatal("negative MaxLineSize accepted")
	}
	w := openTemp(t, Options{})
	if err := w.Copy("stdin", strings.NewReader("x\n")); err == nil {
		t.Fatal("invalid stream accepted")
	}
}

func TestCopyReadError(t *testing.T) {
	w := openTemp(t, Options{})
	boom := errors.New("stream reset")
	r := io.MultiReader(strings.NewReader("whole\nhalf"), iotest.ErrReader(boom))
	if err := w.Copy(Stdout, r); !errors.Is(err, boom) {
		t.Fatalf("Copy: %v", err)
	}
	// The half line read before the error is not lost.
	equalRecs(t, readRecords(t, w.Path()), []rec{full(Stdout, "whole"), partial(Stdout, "half")})
}
