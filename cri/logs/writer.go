package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"github.com/podvisor/podvisor/cri/errdefs"
)

// DefaultMaxLineSize is the longest content of one record, containerd's
// default max_container_log_line_size: a longer line is split into partial
// records.
const DefaultMaxLineSize = 16 << 10

// File and directory modes, as containerd creates them. kubelet normally
// creates the pod's log directory; it is created when missing.
const (
	fileMode os.FileMode = 0o640
	dirMode  os.FileMode = 0o755
)

// readBufferSize is how much of a stream one Read may return.
const readBufferSize = 32 << 10

// ErrClosed is returned by Reopen and Copy once the Writer is closed, which
// happens when the container has stopped: there is no running container
// whose log could be reopened. It is of kind ErrFailedPrecondition, which
// is what ReopenContainerLog returns for a container that is not running.
var ErrClosed = fmt.Errorf("container log writer is closed: the container is not running: %w", errdefs.ErrFailedPrecondition)

// Options tune a Writer. The zero value gives kubelet's defaults.
type Options struct {
	// MaxLineSize is the longest content of one record; zero means
	// DefaultMaxLineSize.
	MaxLineSize int
}

// Writer writes a container's output into its CRI log file.
type Writer struct {
	path    string
	maxLine int

	// mu orders whole records in the file and guards f, which is swapped
	// by Reopen and nil once closed.
	mu sync.Mutex
	f  *os.File
}

// Open opens (or creates) the log file at path for appending, creating its
// directory if needed. Existing records are kept: a restarted daemon
// resumes a container's log with a new Writer on the same path.
func Open(path string, opts Options) (*Writer, error) {
	if opts.MaxLineSize < 0 {
		return nil, fmt.Errorf("container log %s: negative MaxLineSize %d", path, opts.MaxLineSize)
	}
	if opts.MaxLineSize == 0 {
		opts.MaxLineSize = DefaultMaxLineSize
	}
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	return &Writer{path: path, maxLine: opts.MaxLineSize, f: f}, nil
}

// openFile opens path for appending records and makes sure that the first
// record appended starts a line.
func openFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), dirMode); err != nil {
		return nil, fmt.Errorf("container log directory: %w", err)
	}
	// O_NOFOLLOW: the log is always a regular file; a symlink put in its
	// place must not redirect container output elsewhere.
	// O_RDWR rather than O_WRONLY only so that endTornRecord can read the
	// last byte.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW, fileMode)
	if err != nil {
		return nil, fmt.Errorf("open container log: %w", err)
	}
	if err := endTornRecord(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("container log %s: %w", path, err)
	}
	return f, nil
}

// endTornRecord appends a newline when the file does not end with one: the
// last record was cut short by a crash, and the next one must not be glued
// to it.
func endTornRecord(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return nil
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, fi.Size()-1); err != nil {
		return err
	}
	if last[0] == '\n' {
		return nil
	}
	_, err = f.Write([]byte{'\n'})
	return err
}

// Path is the log file's path.
func (w *Writer) Path() string { return w.path }

// Run copies stdout and stderr into the log until both end, then closes the
// Writer. Either reader may be nil: a terminal container has only stdout.
func (w *Writer) Run(stdout, stderr io.Reader) error {
	var (
		wg   sync.WaitGroup
		errs [2]error
	)
	for i, s := range []struct {
		stream Stream
		r      io.Reader
	}{{Stdout, stdout}, {Stderr, stderr}} {
		if s.r == nil {
			continue
		}
		wg.Go(func() { errs[i] = w.Copy(s.stream, s.r) })
	}
	wg.Wait()
	return errors.Join(errs[0], errs[1], w.Close())
}

// Copy writes the output read from r as records of stream until r ends. A
// line left without its newline is written as a partial record at the end.
// Records that cannot be written are logged and dropped so that the
// container never blocks on a full disk; Copy still reads r to its end and
// then returns the first write error. It returns ErrClosed, without reading
// further, once the Writer is closed.
func (w *Writer) Copy(stream Stream, r io.Reader) error {
	if !stream.valid() {
		return fmt.Errorf("container log %s: invalid stream %q", w.path, stream)
	}
	lw := &lineWriter{w: w, stream: stream}
	buf := make([]byte, readBufferSize)
	for {
		n, rerr := r.Read(buf)
		lw.write(buf[:n])
		if rerr != nil {
			lw.flush()
			if errors.Is(rerr, io.EOF) {
				rerr = nil
			} else {
				rerr = fmt.Errorf("read container %s: %w", stream, rerr)
			}
			return errors.Join(rerr, lw.err())
		}
		if lw.closed {
			return fmt.Errorf("container log %s: %w", w.path, ErrClosed)
		}
	}
}

// Reopen starts a new file at the path, after kubelet renamed the current
// one to rotate it. Records are never split between the two files. When the
// new file cannot be opened, records keep going to the old one.
func (w *Writer) Reopen() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("reopen container log %s: %w", w.path, ErrClosed)
	}
	f, err := openFile(w.path)
	if err != nil {
		return fmt.Errorf("reopen container log %s: %w", w.path, err)
	}
	old := w.f
	w.f = f
	if err := old.Close(); err != nil {
		klog.ErrorS(err, "Cannot close rotated container log", "path", w.path)
	}
	return nil
}

// Close closes the file. Records written afterwards are dropped and Copy
// returns ErrClosed. Closing twice is not an error.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("close container log %s: %w", w.path, err)
	}
	return nil
}

// writeRecord formats a record into *buf and appends it with a single
// write. The timestamp is taken under the lock so that timestamps never go
// backwards in the file.
func (w *Writer) writeRecord(buf *[]byte, stream Stream, partial bool, content []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return ErrClosed
	}
	*buf = appendRecord((*buf)[:0], time.Now(), stream, partial, content)
	_, err := w.f.Write(*buf)
	return err
}

// lineWriter cuts one stream's output into records.
type lineWriter struct {
	w      *Writer
	stream Stream
	// pending is the start of a line whose newline has not been read yet.
	pending []byte
	// rec is reused to format records.
	rec []byte

	firstErr error
	dropped  int
	closed   bool
}

// write consumes output: complete lines become full records, the rest
// waits in pending until its newline or until it is too long for a record.
func (lw *lineWriter) write(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			lw.pending = append(lw.pending, p...)
			lw.cutPending()
			return
		}
		line := p[:i]
		if len(lw.pending) > 0 {
			lw.pending = append(lw.pending, line...)
			line = lw.pending
		}
		lw.emit(bytes.TrimSuffix(line, []byte{'\r'}), false)
		lw.pending = lw.pending[:0]
		p = p[i+1:]
	}
}

// cutPending writes the head of an overlong pending line as partial
// records. A lone '\r' past the limit is held back: with the '\n' that may
// follow it, it ends the line instead of starting a record of its own.
func (lw *lineWriter) cutPending() {
	limit := lw.w.maxLine
	for len(lw.pending) > limit && !(len(lw.pending) == limit+1 && lw.pending[limit] == '\r') {
		lw.writeRecord(lw.pending[:limit], true)
		n := copy(lw.pending, lw.pending[limit:])
		lw.pending = lw.pending[:n]
	}
}

// flush writes what is pending at the end of the stream as partial: the
// line never got its newline.
func (lw *lineWriter) flush() {
	if len(lw.pending) > 0 {
		lw.emit(lw.pending, true)
		lw.pending = lw.pending[:0]
	}
}

// emit writes one line, cut into records no longer than the limit. The last
// record is partial when the line has no newline.
func (lw *lineWriter) emit(line []byte, partial bool) {
	limit := lw.w.maxLine
	for len(line) > limit {
		lw.writeRecord(line[:limit], true)
		line = line[limit:]
	}
	lw.writeRecord(line, partial)
}

func (lw *lineWriter) writeRecord(content []byte, partial bool) {
	if lw.closed {
		return
	}
	err := lw.w.writeRecord(&lw.rec, lw.stream, partial, content)
	switch {
	case err == nil:
	case errors.Is(err, ErrClosed):
		lw.closed = true
	default:
		if lw.firstErr == nil {
			lw.firstErr = err
			klog.ErrorS(err, "Cannot write container log; dropping output until it can be written", "path", lw.w.path, "stream", lw.stream)
		}
		lw.dropped++
	}
}

// err reports the write errors met, once the stream has ended.
func (lw *lineWriter) err() error {
	if lw.closed {
		return fmt.Errorf("container log %s: %w", lw.w.path, ErrClosed)
	}
	if lw.firstErr == nil {
		return nil
	}
	return fmt.Errorf("container log %s: %d %s records dropped: %w", lw.w.path, lw.dropped, lw.stream, lw.firstErr)
}
