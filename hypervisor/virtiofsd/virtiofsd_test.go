package virtiofsd

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podvisor/podvisor/hypervisor"
	"github.com/podvisor/podvisor/hypervisor/vmmproc"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "fs.sock")
	tests := []struct {
		name string
		cfg  Config
	}{
		{"relative shared dir", Config{SharedDir: "share", SocketPath: sock}},
		{"missing shared dir", Config{SharedDir: filepath.Join(dir, "nope"), SocketPath: sock}},
		{"shared dir is a file", Config{SharedDir: file, SocketPath: sock}},
		{"relative socket", Config{SharedDir: dir, SocketPath: "fs.sock"}},
		{"socket path too long", Config{SharedDir: dir, SocketPath: "/" + strings.Repeat("s", 110)}},
		{"bad cache mode", Config{SharedDir: dir, SocketPath: sock, Cache: "sometimes"}},
		{"negative thread pool", Config{SharedDir: dir, SocketPath: sock, ThreadPoolSize: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Start(context.Background(), tt.cfg)
			if !errors.Is(err, hypervisor.ErrInvalidConfig) {
				t.Fatalf("Start = %v, want ErrInvalidConfig", err)
			}
			if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("rejected Start created the socket")
			}
		})
	}
}

func TestArgs(t *testing.T) {
	c := Config{SharedDir: "/srv/pod", SocketPath: "/run/fs.sock", ThreadPoolSize: 2, Xattr: true}
	c.withDefaults()
	got := strings.Join(c.args(), " ")
	want := "--fd=3 -o source=/srv/pod -o sandbox=namespace -o cache=auto -o announce_submounts --thread-pool-size=2 -o xattr"
	if got != want {
		t.Errorf("args:\n got %s\nwant %s", got, want)
	}
}

// requireVirtiofsd skips tests that start the real daemon where it cannot
// run.
func requireVirtiofsd(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("virtiofsd runs as root: its namespace sandbox needs CAP_SYS_ADMIN")
	}
	if _, err := exec.LookPath(DefaultBinary); err != nil {
		t.Skipf("%s not installed: %v", DefaultBinary, err)
	}
}

func startTest(t *testing.T, group uint32) (*Daemon, Config) {
	t.Helper()
	requireVirtiofsd(t)
	dir, err := os.MkdirTemp("", "pvfs-") // short: socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	share := filepath.Join(dir, "share")
	if err := os.Mkdir(share, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		ID: "test", SharedDir: share, SocketPath: filepath.Join(dir, "fs.sock"),
		SocketGroup: group, LogPath: filepath.Join(dir, "virtiofsd.log"),
	}
	d, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	return d, cfg
}

// descendants lists a process's children and theirs, as PID/start time
// pairs, to check later that none survived.
func descendants(pid int) map[int]uint64 {
	out := map[int]uint64{}
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
	for _, f := range strings.Fields(string(b)) {
		c, _ := strconv.Atoi(f)
		if st, err := vmmproc.StartTime(c); err == nil {
			out[c] = st
		}
		for k, v := range descendants(c) {
			out[k] = v
		}
	}
	return out
}

func assertStopped(t *testing.T, d *Daemon, procs map[int]uint64) {
	t.Helper()
	procs[d.State().PID] = d.State().StartTime
	deadline := time.Now().Add(5 * time.Second)
	for pid, st := range procs {
		for {
			now, err := vmmproc.StartTime(pid)
			if err != nil || now != st || isZombie(pid) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("process %d still running", pid)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if _, err := os.Lstat(d.SocketPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z'
}

func TestStartStop(t *testing.T) {
	d, _ := startTest(t, 65534)
	fi, err := os.Stat(d.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 || st.Uid != 0 || st.Gid != 65534 {
		t.Errorf("socket %v owned %d:%d, want a 0660 socket owned 0:65534", fi.Mode(), st.Uid, st.Gid)
	}
	// A VMM connecting makes virtiofsd enter its sandbox (a child in new
	// namespaces); Stop must take that down too.
	c, err := net.Dial("unix", d.SocketPath())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Close()
	var procs map[int]uint64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if procs = descendants(d.State().PID); len(procs) > 0 {
			break
		}
	}
	t.Logf("sandbox processes: %v", procs)
	if err := d.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	assertStopped(t, d, procs)
	if err := d.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestExitsWhenVMMLeaves(t *testing.T) {
	d, _ := startTest(t, 0)
	c, err := net.Dial("unix", d.SocketPath())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	c.Close()
	select {
	case <-d.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("virtiofsd still running after its client left")
	}
	if err := d.Err(); err != nil {
		t.Errorf("Err = %v after the client left, want nil", err)
	}
	if err := d.Stop(context.Background()); err != nil {
		t.Errorf("Stop: %v", err)
	}
	assertStopped(t, d, map[int]uint64{})
}

func TestAttach(t *testing.T) {
	d, _ := startTest(t, 0)
	a, err := Attach(d.State())
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if a.SocketPath() != d.SocketPath() {
		t.Errorf("SocketPath = %q, want %q", a.SocketPath(), d.SocketPath())
	}
	if err := a.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	assertStopped(t, a, map[int]uint64{})
	if _, err := Attach(d.State()); !errors.Is(err, hypervisor.ErrNotRunning) {
		t.Errorf("Attach after Stop = %v, want ErrNotRunning", err)
	}
}
