package logs

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"time"
)

// DefaultMaxRecordSize bounds one line read by a Scanner. Records written by
// podvisor are far shorter; the bound exists because a file written by
// another runtime may have been configured without a line limit.
const DefaultMaxRecordSize = 1 << 20

// Scanner reads the records of a log file in order.
type Scanner struct {
	sc   *bufio.Scanner
	line int
	rec  Record
	err  error
}

// NewScanner reads records from r, each at most DefaultMaxRecordSize bytes.
func NewScanner(r io.Reader) *Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), DefaultMaxRecordSize)
	sc.Split(scanRecords)
	return &Scanner{sc: sc}
}

// scanRecords splits at '\n' only: bufio.ScanLines would also drop a '\r'
// that belongs to the content.
func scanRecords(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// Scan advances to the next record. It returns false at the end of the
// input or at the first line that is not a record; Err tells which.
func (s *Scanner) Scan() bool {
	if s.err != nil || !s.sc.Scan() {
		if s.err == nil {
			s.err = s.sc.Err()
		}
		return false
	}
	s.line++
	rec, err := ParseRecord(s.sc.Bytes())
	if err != nil {
		s.err = fmt.Errorf("line %d: %w", s.line, err)
		return false
	}
	s.rec = rec
	return true
}

// Record returns the record Scan read. Its Content is valid until the next
// call to Scan.
func (s *Scanner) Record() Record { return s.rec }

// Err returns the first error met, or nil at a clean end of input.
func (s *Scanner) Err() error { return s.err }

// Message is one line of a container's output, put back together from its
// records.
type Message struct {
	// Time is the timestamp of the line's first record.
	Time   time.Time
	Stream Stream
	// Content is the line without its newline.
	Content []byte
	// Complete is false for output that ended without a newline, when the
	// log holds no full record to end it.
	Complete bool
}

// ReadMessages reads a whole log and joins each stream's partial records to
// the record that completes them, as `kubectl logs` shows them. Messages are
// in the order their last record was written; those still incomplete at the
// end of the log come last, stdout first.
func ReadMessages(r io.Reader) ([]Message, error) {
	var (
		msgs    []Message
		pending = map[Stream]*Message{}
	)
	sc := NewScanner(r)
	for sc.Scan() {
		rec := sc.Record()
		m := pending[rec.Stream]
		if m == nil {
			m = &Message{Time: rec.Time, Stream: rec.Stream}
			pending[rec.Stream] = m
		}
		m.Content = append(m.Content, rec.Content...)
		if !rec.Partial {
			m.Complete = true
			msgs = append(msgs, *m)
			delete(pending, rec.Stream)
		}
	}
	for _, s := range []Stream{Stdout, Stderr} {
		if m := pending[s]; m != nil {
			msgs = append(msgs, *m)
		}
	}
	return msgs, sc.Err()
}
