package logs

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseRecord(t *testing.T) {
	ts := time.Date(2016, 10, 6, 0, 17, 9, 669794202, time.UTC)
	tests := []struct {
		line string
		want Record
		err  bool
	}{
		{line: "2016-10-06T00:17:09.669794202Z stdout F log content 1\n", want: Record{ts, Stdout, false, []byte("log content 1")}},
		{line: "2016-10-06T00:17:09.669794202Z stderr P partial", want: Record{ts, Stderr, true, []byte("partial")}},
		{line: "2016-10-06T00:17:09.669794202Z stdout F ", want: Record{ts, Stdout, false, []byte("")}},
		{line: "2016-10-06T00:17:09.669794202Z stdout F a\r", want: Record{ts, Stdout, false, []byte("a\r")}},
		{line: "2016-10-06T00:17:09.669794202Z stdout F  two  spaces ", want: Record{ts, Stdout, false, []byte(" two  spaces ")}},
		// Forward compatible tags, as kubelet reads them.
		{line: "2016-10-06T00:17:09.669794202Z stdout P:x:y more", want: Record{ts, Stdout, true, []byte("more")}},
		{line: "2016-10-06T00:17:09.669794202Z stdout Q c", want: Record{ts, Stdout, false, []byte("c")}},
		// Other timestamp precisions and zones.
		{line: "2016-10-06T00:17:09Z stdout F c", want: Record{ts.Truncate(time.Second), Stdout, false, []byte("c")}},
		{line: "2016-10-06T02:17:09.669794202+02:00 stdout F c", want: Record{ts, Stdout, false, []byte("c")}},
		{line: "", err: true},
		{line: "\n", err: true},
		{line: "2016-10-06T00:17:09.669794202Z", err: true},
		{line: "2016-10-06T00:17:09.669794202Z stdout", err: true},
		{line: "2016-10-06T00:17:09.669794202Z stdout F", err: true},
		{line: "2016-10-06 stdout F c", err: true},
		{line: "2016-10-06T00:17:09.669794202Z stdin F c", err: true},
		{line: "2016-10-06T00:17:09.669794202Z  F c", err: true},
		{line: `{"log":"content 1","stream":"stdout","time":"2016-10-20T18:39:20.57606443Z"}`, err: true},
	}
	for _, tt := range tests {
		got, err := ParseRecord([]byte(tt.line))
		if tt.err {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%q: error %v, want ErrMalformed", tt.line, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.line, err)
			continue
		}
		if !got.Time.Equal(tt.want.Time) || got.Stream != tt.want.Stream || got.Partial != tt.want.Partial || !bytes.Equal(got.Content, tt.want.Content) {
			t.Errorf("%q: got %+v, want %+v", tt.line, got, tt.want)
		}
	}
}

func TestRecordString(t *testing.T) {
	r := Record{time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("x", 3600)), Stderr, true, []byte("a b")}
	if got, want := r.String(), "2026-01-02T02:04:05.0000006Z stderr P a b"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestScanner(t *testing.T) {
	in := "2016-10-06T00:17:09Z stdout F a\r\n" +
		"2016-10-06T00:17:10Z stderr P b\n" +
		"2016-10-06T00:17:11Z stderr F c\n" +
		"not a record\n" +
		"2016-10-06T00:17:12Z stdout F never read\n"
	sc := NewScanner(strings.NewReader(in))
	var got []string
	for sc.Scan() {
		got = append(got, sc.Record().String())
	}
	want := []string{
		"2016-10-06T00:17:09Z stdout F a\r",
		"2016-10-06T00:17:10Z stderr P b",
		"2016-10-06T00:17:11Z stderr F c",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
	if err := sc.Err(); !errors.Is(err, ErrMalformed) || !strings.HasPrefix(err.Error(), "line 4:") {
		t.Fatalf("Err: %v", err)
	}

	// A record longer than the bound is an error, not a silent cut.
	long := "2016-10-06T00:17:09Z stdout F " + strings.Repeat("x", DefaultMaxRecordSize) + "\n"
	sc = NewScanner(strings.NewReader(long))
	if sc.Scan() || sc.Err() == nil {
		t.Fatal("overlong record accepted")
	}
}

func TestReadMessages(t *testing.T) {
	in := "2016-10-06T00:17:09Z stdout P a\n" +
		"2016-10-06T00:17:10Z stderr P x\n" +
		"2016-10-06T00:17:11Z stdout F b\n" +
		"2016-10-06T00:17:12Z stdout P tail\n" +
		"2016-10-06T00:17:13Z stderr P y\n"
	msgs, err := ReadMessages(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		s := string(m.Stream) + ":" + string(m.Content) + ":" + m.Time.Format(time.TimeOnly)
		if !m.Complete {
			s += ":incomplete"
		}
		got = append(got, s)
	}
	want := "stdout:ab:00:17:09|stdout:tail:00:17:12:incomplete|stderr:xy:00:17:10:incomplete"
	if g := strings.Join(got, "|"); g != want {
		t.Fatalf("got %s\nwant %s", g, want)
	}
}

// FuzzParseRecord: any input is parsed or rejected without panicking, and a
// parsed record formats back to a line that parses to the same record.
func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{
		"2016-10-06T00:17:09.669794202Z stdout F log content 1\n",
		"2016-10-06T00:17:09.669794202Z stderr P partial",
		"2016-10-06T00:17:09Z stdout P:x c\r",
		"2016-10-06T02:17:09.1+02:00 stderr F  \x00\xff",
		"x y z",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		rec, err := ParseRecord(line)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error of another kind: %v", err)
			}
			return
		}
		if !rec.Stream.valid() {
			t.Fatalf("invalid stream %q accepted", rec.Stream)
		}
		again, err := ParseRecord(appendRecord(nil, rec.Time, rec.Stream, rec.Partial, rec.Content))
		if err != nil {
			t.Fatalf("formatted %v does not parse: %v", rec, err)
		}
		if !again.Time.Equal(rec.Time) || again.Stream != rec.Stream || again.Partial != rec.Partial || !bytes.Equal(again.Content, rec.Content) {
			t.Fatalf("round trip: %+v became %+v", rec, again)
		}
	})
}

// FuzzWriterRoundTrip: whatever a container writes, reading the log back
// gives its lines, with only the line ends changed.
func FuzzWriterRoundTrip(f *testing.F) {
	f.Add([]byte("a\nb\r\nc"), uint8(4))
	f.Add([]byte("\r\r\n\n\r"), uint8(1))
	f.Add(bytes.Repeat([]byte("xyz\r"), 40), uint8(7))
	f.Fuzz(func(t *testing.T, out []byte, limit uint8) {
		w, err := Open(t.TempDir()+"/0.log", Options{MaxLineSize: int(limit%16) + 1})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if err := w.Copy(Stdout, bytes.NewReader(out)); err != nil {
			t.Fatal(err)
		}
		w.Close()
		f, err := os.Open(w.Path())
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		msgs, err := ReadMessages(f)
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		for i, m := range msgs {
			got = append(got, m.Content...)
			if m.Complete {
				got = append(got, '\n')
			} else if i != len(msgs)-1 {
				t.Fatalf("incomplete message %d of %d", i, len(msgs))
			}
		}
		want := bytes.ReplaceAll(out, []byte("\r\n"), []byte("\n"))
		if !bytes.Equal(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}
