//go:build e2e

package qemu

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The VM tests boot a real kernel under QEMU with a throw-away initramfs:
// testdata/guestinit as /init plus the virtio modules it loads.
//
//	PODVISOR_TEST_KERNEL   bzImage to boot (required; tests skip without it)
//	PODVISOR_TEST_MODULES  directory searched for the modules below; by
//	                       default <root>/lib/modules/<version> next to a
//	                       kernel at <root>/boot/vmlinuz-<version>.
const (
	envKernel  = "PODVISOR_TEST_KERNEL"
	envModules = "PODVISOR_TEST_MODULES"
)

// guestModules in load order; a kernel with these built in needs none.
var guestModules = []string{
	"virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
	"virtio_console", "virtio_blk", "virtio-rng", "failover", "net_failover", "virtio_net",
	"fuse", "virtiofs",
}

// vmUID/vmGID run the test VMs unprivileged, as the driver is used.
const vmUID, vmGID = 65534, 65534

type guestImage struct {
	kernel, initramfs string
}

var (
	testImage    guestImage
	testImageErr error
	imageDir     string
)

func TestMain(m *testing.M) {
	code := func() int {
		if os.Getenv(envKernel) != "" && os.Geteuid() == 0 {
			var err error
			imageDir, err = os.MkdirTemp("", "pvq-image-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(imageDir)
			testImage, testImageErr = buildGuestImage(imageDir)
		}
		return m.Run()
	}()
	os.Exit(code)
}

// requireVM skips tests that need a real VM on hosts that cannot run one,
// saying why.
func requireVM(t *testing.T) guestImage {
	t.Helper()
	switch {
	case os.Geteuid() != 0:
		t.Skip("VM tests need root (taps, netns, dropping to an unprivileged VMM user)")
	case os.Getenv(envKernel) == "":
		t.Skipf("VM tests need a guest kernel: set %s (and %s if its virtio drivers are modules elsewhere)", envKernel, envModules)
	}
	if _, err := exec.LookPath(DefaultOptions().Binary); err != nil {
		t.Skipf("VM tests need %s: %v", DefaultOptions().Binary, err)
	}
	if testImageErr != nil {
		t.Fatalf("build test guest image: %v", testImageErr)
	}
	return testImage
}

// buildGuestImage copies the kernel somewhere the unprivileged VMM user can
// read and packs the initramfs.
func buildGuestImage(dir string) (guestImage, error) {
	if err := os.Chmod(dir, 0o755); err != nil {
		return guestImage{}, err
	}
	img := guestImage{kernel: filepath.Join(dir, "vmlinuz"), initramfs: filepath.Join(dir, "initramfs.cpio")}
	src := os.Getenv(envKernel)
	if err := copyFile(src, img.kernel); err != nil {
		return img, err
	}
	initBin := filepath.Join(dir, "init")
	// go test puts its own GOROOT/bin first in PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		return img, err
	}
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", initBin, "./testdata/guestinit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return img, fmt.Errorf("build guestinit: %v: %s", err, out)
	}
	initData, err := os.ReadFile(initBin)
	if err != nil {
		return img, err
	}
	files := []cpioEntry{
		{name: "dev", mode: unix.S_IFDIR | 0o755}, {name: "proc", mode: unix.S_IFDIR | 0o755},
		{name: "sys", mode: unix.S_IFDIR | 0o755}, {name: "mnt", mode: unix.S_IFDIR | 0o755},
		{name: "modules", mode: unix.S_IFDIR | 0o755},
		{name: "init", mode: unix.S_IFREG | 0o755, data: initData},
	}
	mods, err := findModules(src)
	if err != nil {
		return img, err
	}
	for i, m := range mods {
		data, err := os.ReadFile(m)
		if err != nil {
			return img, err
		}
		// Numbered so that guestinit's sorted glob loads them in order.
		name := fmt.Sprintf("modules/%02d-%s", i, filepath.Base(m))
		files = append(files, cpioEntry{name: name, mode: unix.S_IFREG | 0o644, data: data})
	}
	var buf bytes.Buffer
	writeCpio(&buf, files)
	return img, os.WriteFile(img.initramfs, buf.Bytes(), 0o644)
}

// findModules locates guestModules; a module absent from the tree is
// assumed built in.
func findModules(kernel string) ([]string, error) {
	dir := os.Getenv(envModules)
	if dir == "" {
		m := regexp.MustCompile(`^(.*)/boot/vmlinuz-(.+)$`).FindStringSubmatch(kernel)
		if m == nil {
			return nil, nil
		}
		dir = filepath.Join(m[1], "lib/modules", m[2])
	}
	found := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name, ok := strings.CutSuffix(d.Name(), ".ko"); ok {
			found[name] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envModules, err)
	}
	var paths []string
	for _, m := range guestModules {
		if p, ok := found[m]; ok {
			paths = append(paths, p)
		}
	}
	return paths, nil
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}

type cpioEntry struct {
	name string
	mode uint32
	data []byte
}

// writeCpio writes a newc ("070701") archive, the format the kernel unpacks
// into its initramfs.
func writeCpio(w *bytes.Buffer, entries []cpioEntry) {
	pad := func() {
		for w.Len()%4 != 0 {
			w.WriteByte(0)
		}
	}
	write := func(ino int, e cpioEntry) {
		nlink := 1
		if e.mode&unix.S_IFMT == unix.S_IFDIR {
			nlink = 2
		}
		fmt.Fprintf(w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, 0, 0, len(e.name)+1, 0)
		w.WriteString(e.name)
		w.WriteByte(0)
		pad()
		w.Write(e.data)
		pad()
	}
	for i, e := range entries {
		write(i+1, e)
	}
	write(0, cpioEntry{name: "TRAILER!!!"})
}

// vmStateDir is a VM's private directory, owned by the VMM user. It is
// short: unix socket paths are limited to 107 bytes.
func vmStateDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pvq-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, vmUID, vmGID); err != nil {
		t.Fatal(err)
	}
	return dir
}

// waitConsole waits for a line containing want in the console log and
// returns how long that took from start.
func waitConsole(t *testing.T, path, want string, start time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, []byte(want)) {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("console never showed %q; console:\n%s", want, b)
	return 0
}

// agentClient talks guestinit's line protocol over the agent port.
type agentClient struct {
	conn net.Conn
	r    *bufio.Reader
}

func newAgentClient(c net.Conn) *agentClient { return &agentClient{conn: c, r: bufio.NewReader(c)} }

func (a *agentClient) ask(t *testing.T, req string) string {
	t.Helper()
	_ = a.conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(a.conn, req+"\n"); err != nil {
		t.Fatalf("agent write %q: %v", req, err)
	}
	line, err := a.r.ReadString('\n')
	if err != nil {
		t.Fatalf("agent read after %q: %v", req, err)
	}
	return strings.TrimSpace(line)
}

// askUntil repeats req until the reply satisfies ok (hot-plug takes the
// guest a moment).
func (a *agentClient) askUntil(t *testing.T, req string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := a.ask(t, req)
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q: last reply %q", req, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testNetns creates a network namespace for one test and returns its path.
func testNetns(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("pvq-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return "/run/netns/" + name
}

// newTap creates a tap device inside netns and returns its open file. The
// device goes away with its last open descriptor.
func newTap(t *testing.T, netns, name string) *os.File {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open(netns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			panic(err) // the thread is in the wrong namespace
		}
	}()
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var req struct {
		name  [unix.IFNAMSIZ]byte
		flags uint16
		_     [22]byte
	}
	copy(req.name[:], name)
	req.flags = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); errno != 0 {
		unix.Close(fd)
		t.Fatalf("TUNSETIFF: %v", errno)
	}
	f := os.NewFile(uintptr(fd), name)
	t.Cleanup(func() { f.Close() })
	return f
}

// qemuProcesses lists PIDs whose command line holds arg: how a test checks
// that a failed launch left no QEMU behind without knowing its PID.
func qemuProcesses(arg string) []string {
	var pids []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err == nil && bytes.Contains(b, []byte(arg)) {
			pids = append(pids, filepath.Base(d))
		}
	}
	return pids
}

// childPIDs lists a process's children.
func childPIDs(pid int) []int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		var p int
		fmt.Sscanf(f, "%d", &p)
		pids = append(pids, p)
	}
	return pids
}

// rssKiB is a process's resident set size.
func rssKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var n int
			fmt.Sscanf(strings.TrimSpace(v), "%d", &n)
			return n
		}
	}
	return -1
}
