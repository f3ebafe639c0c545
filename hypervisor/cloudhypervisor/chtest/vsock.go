package chtest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// vsockServer plays a VMM's hybrid vsock socket with a guest behind it that
// echoes whatever it receives.
type vsockServer struct {
	l     *net.UnixListener
	cfg   Config
	rec   *recorder
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func listenVsock(path string, cfg Config, rec *recorder) (*vsockServer, error) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	// Like the real VMM, leave the socket file behind: removing it is the
	// driver's job.
	l.SetUnlinkOnClose(false)
	v := &vsockServer{l: l, cfg: cfg, rec: rec, conns: map[net.Conn]struct{}{}}
	v.wg.Add(1)
	go v.accept()
	return v, nil
}

func (v *vsockServer) accept() {
	defer v.wg.Done()
	for {
		c, err := v.l.Accept()
		if err != nil {
			return
		}
		v.mu.Lock()
		v.conns[c] = struct{}{}
		v.mu.Unlock()
		v.wg.Add(1)
		go func() {
			defer v.wg.Done()
			v.serve(c)
			v.mu.Lock()
			delete(v.conns, c)
			v.mu.Unlock()
			c.Close()
		}()
	}
}

func (v *vsockServer) serve(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReaderSize(c, 64)
	line, err := br.ReadString('\n')
	if err != nil {
		return
	}
	port, ok := parseConnect(line)
	if !ok {
		v.rec.record(Event{Kind: "vsock", Error: fmt.Sprintf("bad CONNECT line %q", line)})
		return
	}
	ports := v.cfg.VsockPorts
	if len(ports) == 0 {
		ports = []uint32{DefaultVsockPort}
	}
	if !slices.Contains(ports, port) {
		// Nobody listens in the guest: the VMM closes the connection.
		v.rec.record(Event{Kind: "vsock", Port: port, Error: "refused"})
		return
	}
	v.rec.record(Event{Kind: "vsock", Port: port})
	_ = c.SetReadDeadline(time.Time{})
	if _, err := io.WriteString(c, fmt.Sprintf("OK %d\n", VsockHostPort)+v.cfg.VsockGreeting); err != nil {
		return
	}
	_, _ = io.Copy(c, br)
}

func parseConnect(line string) (uint32, bool) {
	rest, ok := strings.CutPrefix(line, "CONNECT ")
	if !ok || !strings.HasSuffix(rest, "\n") {
		return 0, false
	}
	p, err := strconv.ParseUint(strings.TrimSuffix(rest, "\n"), 10, 32)
	return uint32(p), err == nil
}

func (v *vsockServer) close() {
	v.l.Close()
	v.mu.Lock()
	for c := range v.conns {
		c.Close()
	}
	v.mu.Unlock()
	v.wg.Wait()
}
