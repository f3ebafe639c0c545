package logs

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// Stream names the output a record came from. The values are the CRI's
// LogStreamType strings.
type Stream string

// The two output streams of a container.
const (
	Stdout Stream = "stdout"
	Stderr Stream = "stderr"
)

func (s Stream) valid() bool { return s == Stdout || s == Stderr }

// The record tags: a full record ends a line of output, a partial one does
// not. Tags are separated by ':' so that more may follow; kubelet looks only
// at the first.
const (
	tagFull      = "F"
	tagPartial   = "P"
	tagDelimiter = ':'
)

// TimeFormat is the layout of a record's timestamp. Parsing accepts any
// number of fractional digits, as kubelet does.
const TimeFormat = time.RFC3339Nano

// ErrMalformed is the kind of every error ParseRecord returns.
var ErrMalformed = errors.New("malformed log record")

// Record is one line of a log file.
type Record struct {
	Time   time.Time
	Stream Stream
	// Partial is set when the record does not end a line of output: the
	// line continues in the next record of the same stream.
	Partial bool
	// Content is the output, without the newline that ended it.
	Content []byte
}

// appendRecord appends the log line for one record to dst.
func appendRecord(dst []byte, t time.Time, stream Stream, partial bool, content []byte) []byte {
	dst = t.UTC().AppendFormat(dst, TimeFormat)
	dst = append(dst, ' ')
	dst = append(dst, stream...)
	dst = append(dst, ' ')
	if partial {
		dst = append(dst, tagPartial...)
	} else {
		dst = append(dst, tagFull...)
	}
	dst = append(dst, ' ')
	dst = append(dst, content...)
	return append(dst, '\n')
}

// ParseRecord parses one line of a log file, with or without its trailing
// newline. It accepts what kubelet accepts: unknown tags are read as full
// records, like kubelet does, to stay forward compatible. The returned
// Content aliases line.
func ParseRecord(line []byte) (Record, error) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	var rec Record
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return Record{}, fmt.Errorf("%w: no timestamp", ErrMalformed)
	}
	t, err := time.Parse(TimeFormat, string(ts))
	if err != nil {
		return Record{}, fmt.Errorf("%w: timestamp: %w", ErrMalformed, err)
	}
	rec.Time = t
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return Record{}, fmt.Errorf("%w: no stream", ErrMalformed)
	}
	rec.Stream = Stream(stream)
	if !rec.Stream.valid() {
		return Record{}, fmt.Errorf("%w: stream %q", ErrMalformed, stream)
	}
	tags, content, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return Record{}, fmt.Errorf("%w: no tag", ErrMalformed)
	}
	first, _, _ := bytes.Cut(tags, []byte{tagDelimiter})
	rec.Partial = string(first) == tagPartial
	rec.Content = content
	return rec, nil
}

// String formats r as a log line without its newline.
func (r Record) String() string {
	b := appendRecord(nil, r.Time, r.Stream, r.Partial, r.Content)
	return string(b[:len(b)-1])
}
