// Command guestinit is the /init of the throw-away initramfs the QEMU driver's
// VM tests boot. It announces itself on the serial console, loads the virtio
// modules packed next to it and then serves a line protocol on the agent's
// virtio-serial port so that the test can check the channel end to end.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// agentPort must match qemu.AgentPortName; the test binary cannot import it
// from here without dragging the driver into the guest.
const agentPort = "io.podvisor.agent"

func main() {
	mustMount("devtmpfs", "/dev", "devtmpfs")
	mustMount("proc", "/proc", "proc")
	mustMount("sysfs", "/sys", "sysfs")
	console, err := os.OpenFile("/dev/console", os.O_WRONLY, 0)
	if err != nil {
		console = os.Stdout
	}
	say := func(format string, args ...any) { fmt.Fprintf(console, "guestinit: "+format+"\n", args...) }
	say("started")
	if err := loadModules("/modules"); err != nil {
		say("modules: %v", err)
	}
	say("ready")
	dev, err := findPort(agentPort, 20*time.Second)
	if err != nil {
		say("agent port: %v", err)
		halt()
	}
	say("agent port %s", dev)
	serve(dev, say)
}

func mustMount(src, dst, fstype string) {
	_ = os.MkdirAll(dst, 0o755)
	if err := unix.Mount(src, dst, fstype, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		fmt.Fprintf(os.Stderr, "mount %s: %v\n", dst, err)
	}
}

// loadModules loads every .ko in dir, retrying in passes so that the order
// the files were packed in does not have to follow their dependencies.
func loadModules(dir string) error {
	names, _ := filepath.Glob(filepath.Join(dir, "*.ko"))
	pending := names
	for len(pending) > 0 {
		var next []string
		var lastErr error
		for _, n := range pending {
			if err := loadModule(n); err != nil {
				next = append(next, n)
				lastErr = fmt.Errorf("%s: %w", filepath.Base(n), err)
			}
		}
		if len(next) == len(pending) {
			return lastErr
		}
		pending = next
	}
	return nil
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", 0)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

// findPort maps a virtio-serial port name to its device node.
func findPort(name string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		dirs, _ := filepath.Glob("/sys/class/virtio-ports/vport*")
		for _, d := range dirs {
			b, err := os.ReadFile(filepath.Join(d, "name"))
			if err == nil && strings.TrimSpace(string(b)) == name {
				return "/dev/" + filepath.Base(d), nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("no port named %s", name)
}

// serve answers one line per request line. virtio-serial reads return EOF
// while no host client is connected, so EOF means "wait for the next one".
func serve(dev string, say func(string, ...any)) {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		say("open %s: %v", dev, err)
		halt()
	}
	for {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fmt.Fprintln(f, handle(sc.Text()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func handle(line string) string {
	cmd, arg, _ := strings.Cut(line, " ")
	switch cmd {
	case "echo":
		return arg
	case "block":
		entries, _ := os.ReadDir("/sys/block")
		var names []string
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "vd") {
				names = append(names, e.Name())
			}
		}
		return "block " + strings.Join(names, ",")
	case "net":
		entries, _ := os.ReadDir("/sys/class/net")
		var names []string
		for _, e := range entries {
			if e.Name() != "lo" {
				names = append(names, e.Name())
			}
		}
		return "net " + strings.Join(names, ",")
	case "mount":
		_ = os.MkdirAll("/mnt", 0o755)
		if err := unix.Mount(arg, "/mnt", "virtiofs", 0, ""); err != nil {
			return "error " + err.Error()
		}
		return "ok"
	case "cat":
		b, err := os.ReadFile(arg)
		if err != nil {
			return "error " + err.Error()
		}
		// One reply per line: a multi-line file comes back joined.
		return strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", " | ")
	case "poweroff":
		go func() {
			time.Sleep(100 * time.Millisecond)
			halt()
		}()
		return "ok"
	}
	return "error unknown command " + cmd
}

func halt() {
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
