package podvm

import (
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// fakeOutput is the host's end of an output stream: reads come from
// chunks, acknowledgements are recorded, and writes fail with writeErr.
type fakeOutput struct {
	chunks   []string
	acks     []uint64
	writeErr error
	closed   bool
}

func (f *fakeOutput) Read(b []byte) (int, error) {
	if len(f.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(b, f.chunks[0])
	f.chunks[0] = f.chunks[0][n:]
	if f.chunks[0] == "" {
		f.chunks = f.chunks[1:]
	}
	return n, nil
}

func (f *fakeOutput) Write(b []byte) (int, error) {
	if f.writeErr != nil {
		return 0, f.writeErr
	}
	if len(b) != ackSize {
		return 0, errors.New("not an acknowledgement")
	}
	f.acks = append(f.acks, binary.BigEndian.Uint64(b))
	return len(b), nil
}

func (f *fakeOutput) Close() error { f.closed = true; return nil }

func TestAckedOutputAcknowledgesEachRead(t *testing.T) {
	s := &fakeOutput{chunks: []string{"hello ", "world\n"}}
	o := &ackedOutput{s: s}
	got, err := io.ReadAll(o)
	if err != nil || string(got) != "hello world\n" {
		t.Fatalf("read %q, %v", got, err)
	}
	if len(s.acks) != 2 || s.acks[0] != 6 || s.acks[1] != 12 {
		t.Errorf("acknowledgements %v, want [6 12]", s.acks)
	}
	o.Close()
	if !s.closed {
		t.Error("Close did not close the stream")
	}
}

// TestAckedOutputWithholdsUnacknowledged checks that bytes whose
// acknowledgement fails are not returned: the agent sends them again to the
// next host.
func TestAckedOutputWithholdsUnacknowledged(t *testing.T) {
	lost := errors.New("session ended")
	s := &fakeOutput{chunks: []string{"data"}, writeErr: lost}
	n, err := (&ackedOutput{s: s}).Read(make([]byte, 16))
	if n != 0 || !errors.Is(err, lost) {
		t.Fatalf("Read = %d, %v; want 0 and the acknowledgement's error", n, err)
	}
}
