package streaming

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	kubestreaming "k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
	utilexec "k8s.io/utils/exec"
)

const (
	// drainTimeout bounds how long output may keep coming after an exec'd
	// process exited: a pipe still open then is held by a descendant left
	// running in the background, and the client must not wait for it.
	drainTimeout = 2 * time.Second
	// portForwardLinger is how long a forwarded connection may go on in
	// one direction after the other ended cleanly, as socat's -t does: the
	// kubelet handler gives no context that ends when the client leaves.
	portForwardLinger = time.Second
)

// errStopping ends the streams in progress when the server stops.
var errStopping = errors.New("streaming server is stopping")

// runtime adapts a Backend to the kubelet streaming library's Runtime: it
// copies the client's streams to and from a session and turns the exit
// code into the error the library reports to the client.
type runtime struct {
	backend Backend
	// stopping is closed when the server stops: every call returns, so
	// that the library can tell its client before the connection closes.
	stopping chan struct{}
}

var _ kubestreaming.Runtime = (*runtime)(nil)

// Exec runs cmd and returns when it has exited and its output has been
// sent, or when the client went away. A non-zero exit code is returned as a
// utilexec.ExitError, which the library sends as the exit code that
// `kubectl exec` and `crictl exec` exit with.
func (r *runtime) Exec(ctx context.Context, containerID string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	opts := ExecOptions{Cmd: cmd, StreamOptions: streamOptions(in, out, errOut, tty)}
	sess, err := r.backend.Exec(ctx, containerID, opts)
	if err != nil {
		return fmt.Errorf("exec %q in container %q: %w", cmd, containerID, err)
	}
	defer sess.Close()
	p := connect(ctx, sess, opts.StreamOptions, in, out, errOut, resize)
	defer p.stop()

	type exit struct {
		code int
		err  error
	}
	exited := make(chan exit, 1)
	go func() {
		code, err := sess.Wait(ctx)
		exited <- exit{code, err}
	}()
	var e exit
	select {
	case e = <-exited:
	case err := <-p.failed:
		// The client is gone: the deferred Close ends the process rather
		// than let it block on output nobody reads.
		return fmt.Errorf("exec %q in container %q: %w", cmd, containerID, err)
	case <-r.stopping:
		return fmt.Errorf("exec %q in container %q: %w", cmd, containerID, errStopping)
	}
	if e.err != nil {
		return fmt.Errorf("exec %q in container %q: %w", cmd, containerID, e.err)
	}
	if !p.drain(drainTimeout) {
		klog.V(4).InfoS("Exec output still open after exit, not waiting for it", "containerID", containerID, "cmd", cmd)
	}
	if e.code != 0 {
		return utilexec.CodeExitError{
			Err:  fmt.Errorf("command %q in container %q exited with code %d", cmd, containerID, e.code),
			Code: e.code,
		}
	}
	return nil
}

// Attach connects the client to the container's main process until its
// output ends (the container exited) or the client leaves; with no output
// requested, until the client's input ends.
func (r *runtime) Attach(ctx context.Context, containerID string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	opts := streamOptions(in, out, errOut, tty)
	sess, err := r.backend.Attach(ctx, containerID, opts)
	if err != nil {
		return fmt.Errorf("attach to container %q: %w", containerID, err)
	}
	defer sess.Close()
	p := connect(ctx, sess, opts, in, out, errOut, resize)
	defer p.stop()
	done := p.outputDone
	if p.outputs == 0 {
		done = p.inputDone
	}
	select {
	case <-done:
	case err := <-p.failed:
		// Detaching is the usual way an attach ends, not an error.
		klog.V(4).InfoS("Attach ended", "containerID", containerID, "reason", err)
	case <-r.stopping:
		return fmt.Errorf("attach to container %q: %w", containerID, errStopping)
	}
	return nil
}

// PortForward copies between the client's stream and a connection the
// backend dialed in the pod until both directions ended, or one of them
// ended and the other lingered past portForwardLinger, or either failed.
func (r *runtime) PortForward(ctx context.Context, podSandboxID string, port int32, stream io.ReadWriteCloser) error {
	conn, err := r.backend.PortForward(ctx, podSandboxID, port)
	if err != nil {
		return fmt.Errorf("port forward to port %d in pod sandbox %q: %w", port, podSandboxID, err)
	}
	defer conn.Close()
	type result struct {
		dir string
		err error
	}
	results := make(chan result, 2)
	go func() {
		_, err := io.Copy(conn, stream)
		if err == nil {
			// Pass the client's end of input on when the connection can
			// carry it; otherwise the linger below ends the connection.
			if cw, ok := conn.(interface{ CloseWrite() error }); ok {
				err = cw.CloseWrite()
			}
		}
		results <- result{"from client", err}
	}()
	go func() {
		_, err := io.Copy(stream, conn)
		if err == nil {
			// Close is a half-close of the client's stream: it reads EOF.
			err = stream.Close()
		}
		results <- result{"to client", err}
	}()
	var first result
	select {
	case first = <-results:
	case <-r.stopping:
		return fmt.Errorf("port forward to port %d in pod sandbox %q: %w", port, podSandboxID, errStopping)
	}
	if first.err != nil {
		return fmt.Errorf("port forward to port %d in pod sandbox %q, %s: %w", port, podSandboxID, first.dir, first.err)
	}
	select {
	case second := <-results:
		// Once one direction is over, the client tearing its stream down
		// is the usual end of the other.
		if second.err != nil {
			klog.V(4).InfoS("Port forward ended", "podSandboxID", podSandboxID, "port", port, "dir", second.dir, "err", second.err)
		}
	case <-time.After(portForwardLinger):
		klog.V(4).InfoS("Port forward closed after one direction ended", "podSandboxID", podSandboxID, "port", port, "ended", first.dir)
	case <-ctx.Done():
	case <-r.stopping:
	}
	return nil
}

// streamOptions tells which streams the client asked for. The library
// passes nil for a stream not requested over SPDY. Over websocket it passes
// one that reads EOF and discards writes, so the process gets an input that
// ends at once, and an attach ends a StdinOnce container's input, as it
// does with containerd. Runtimes normally see SPDY: kubelet relays what the
// API server sends, and the API server translates websocket clients.
func streamOptions(in io.Reader, out, errOut io.WriteCloser, tty bool) StreamOptions {
	return StreamOptions{
		Stdin:  in != nil,
		Stdout: out != nil,
		Stderr: errOut != nil && !tty,
		TTY:    tty,
	}
}

// pump moves one session's streams.
type pump struct {
	// outputs counts the output copies; outputDone is closed when they
	// all ended.
	outputs    int
	outputDone chan struct{}
	// inputDone is closed when the client's input ended.
	inputDone chan struct{}
	// failed receives the first error writing to the client: it is gone.
	failed chan error
	// stopped is closed by stop, when the caller is done with the session.
	stopped chan struct{}
}

// connect starts copying the client's input to the session, the session's
// output to the client, and terminal sizes to the session. The caller
// calls stop and closes the session when it is done.
func connect(ctx context.Context, sess Session, opts StreamOptions, in io.Reader, out, errOut io.WriteCloser, resize <-chan remotecommand.TerminalSize) *pump {
	p := &pump{
		outputDone: make(chan struct{}),
		inputDone:  make(chan struct{}),
		failed:     make(chan error, 1),
		stopped:    make(chan struct{}),
	}
	fail := func(err error) {
		select {
		case p.failed <- err:
		default:
		}
	}

	if stdin := sess.Stdin(); in != nil && stdin != nil {
		go func() {
			defer close(p.inputDone)
			// Whether input ended or the client went away, the process
			// gets end of file. A write error means the process no longer
			// reads, which is its business.
			if _, err := io.Copy(stdin, in); err != nil {
				klog.V(4).InfoS("Stdin copy ended", "err", err)
			}
			stdin.Close()
		}()
	} else {
		close(p.inputDone)
	}

	type output struct {
		name string
		src  io.Reader
		dst  io.Writer
	}
	outputs := []output{{"stdout", sess.Stdout(), out}, {"stderr", sess.Stderr(), errOut}}
	if opts.TTY {
		// A terminal has one output, and the library hands no stderr
		// writer with it. Should the backend still give a separate
		// stderr, it goes where a terminal would have put it.
		outputs[1].dst = nil
		if out != nil {
			var mu sync.Mutex
			outputs[0].dst = lockedWriter{&mu, out}
			outputs[1].dst = lockedWriter{&mu, out}
		}
	}
	var wg sync.WaitGroup
	for _, o := range outputs {
		if o.src == nil || o.dst == nil {
			continue
		}
		p.outputs++
		wg.Go(func() {
			dst := &clientWriter{w: o.dst}
			_, err := io.Copy(dst, o.src)
			switch {
			case dst.err != nil:
				fail(fmt.Errorf("write %s to client: %w", o.name, dst.err))
			case err != nil:
				// The session broke (the VM is gone, say): this output
				// has ended; Wait tells the rest.
				klog.V(2).InfoS("Session output failed", "stream", o.name, "err", err)
			}
		})
	}
	go func() {
		wg.Wait()
		// The process closed its outputs: so does the client's side.
		for _, w := range []io.WriteCloser{out, errOut} {
			if w != nil {
				w.Close()
			}
		}
		close(p.outputDone)
	}()

	if resize != nil {
		go p.resizeLoop(ctx, sess, resize)
	}
	return p
}

// stop ends the resize loop: the session is about to be closed.
func (p *pump) stop() { close(p.stopped) }

// drain waits up to timeout for the output copies to end.
func (p *pump) drain(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.outputDone:
		return true
	case <-t.C:
		return false
	}
}

// resizeLoop passes the client's terminal sizes on until the client stops
// sending them or the session ends.
func (p *pump) resizeLoop(ctx context.Context, sess Session, resize <-chan remotecommand.TerminalSize) {
	for {
		select {
		case size, ok := <-resize:
			if !ok {
				return
			}
			// A client that does not know its size sends zeros; a
			// zero-sized terminal would only confuse the process.
			if size.Width == 0 || size.Height == 0 {
				continue
			}
			if err := sess.Resize(ctx, TerminalSize{Rows: size.Height, Cols: size.Width}); err != nil {
				klog.V(4).InfoS("Cannot resize terminal", "err", err)
			}
		case <-p.stopped:
			return
		case <-ctx.Done():
			return
		}
	}
}

// clientWriter remembers a write error, telling it apart from a read error
// of the same copy.
type clientWriter struct {
	w   io.Writer
	err error
}

func (c *clientWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	if err != nil {
		c.err = err
	}
	return n, err
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
