package cri

import (
	"io"
	"sync"

	"k8s.io/klog/v2"
)

// containerIO connects a container's init process to its log file and to
// attached clients: each output stream is copied once, to the log writer
// and to every attached client (a client that fails to keep up is
// detached, never the log).
type containerIO struct {
	stdin  io.WriteCloser
	stdout *fanout
	stderr *fanout
	log    LogWriter
	done   chan struct{} // closed when both output streams ended
}

// newContainerIO starts copying p's output. log may be nil (no log path).
func newContainerIO(id string, p Process, log LogWriter) *containerIO {
	cio := &containerIO{stdin: p.Stdin(), stdout: &fanout{}, stderr: &fanout{}, log: log, done: make(chan struct{})}
	var logOut, logErr io.Reader
	var wg sync.WaitGroup
	pump := func(src io.Reader, f *fanout, logR *io.Reader) {
		if src == nil {
			return
		}
		var logW *io.PipeWriter
		if log != nil {
			pr, pw := io.Pipe()
			*logR, logW = pr, pw
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				if n > 0 {
					if logW != nil {
						if _, werr := logW.Write(buf[:n]); werr != nil {
							klog.V(2).InfoS("Container log writer stopped", "containerID", id, "err", werr)
							logW = nil
						}
					}
					f.Write(buf[:n])
				}
				if err != nil {
					break
				}
			}
			if logW != nil {
				logW.Close()
			}
			f.closeAll()
		}()
	}
	pump(p.Stdout(), cio.stdout, &logOut)
	pump(p.Stderr(), cio.stderr, &logErr)
	if log != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := log.Run(logOut, logErr); err != nil {
				klog.ErrorS(err, "Container log", "containerID", id)
			}
		}()
	}
	go func() { wg.Wait(); close(cio.done) }()
	return cio
}

// fanout writes to every attached sink.
type fanout struct {
	mu     sync.Mutex
	sinks  map[int]io.WriteCloser
	next   int
	closed bool
}

// Write copies p to every sink; a failing sink is removed.
func (f *fanout) Write(p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, w := range f.sinks {
		if _, err := w.Write(p); err != nil {
			delete(f.sinks, k)
		}
	}
}

// add attaches w; remove detaches it. w is closed when the stream ends.
func (f *fanout) add(w io.WriteCloser) (remove func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		w.Close()
		return func() {}
	}
	if f.sinks == nil {
		f.sinks = map[int]io.WriteCloser{}
	}
	k := f.next
	f.next++
	f.sinks[k] = w
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.sinks, k)
	}
}

func (f *fanout) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for k, w := range f.sinks {
		w.Close()
		delete(f.sinks, k)
	}
}
