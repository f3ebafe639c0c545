package testimage

import (
	"fmt"
	"os/exec"
	"strings"
)

// BusyboxStatic is Debian's busybox-static.
const BusyboxStatic = "/bin/busybox"

// BusyboxLayer is a minimal userland: busybox-static at /bin/busybox with
// a symlink per applet in /bin, /etc/passwd and /etc/group with root,
// nobody and an unprivileged "app" user (1000:1000, extra group 2000), and
// world-writable /tmp.
func BusyboxLayer() (Layer, error) {
	bb, err := HostFile(BusyboxStatic, "bin/busybox", 0o755)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(BusyboxStatic, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	l := Layer{bb,
		{Path: "etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{Path: "etc/group", Data: []byte("root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n")},
		{Path: "tmp", Dir: true, Mode: 0o1777},
		{Path: "root", Dir: true, Mode: 0o700},
		{Path: "home/app", Dir: true, UID: 1000, GID: 1000},
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		l = append(l, File{Path: "bin/" + applet, Link: "busybox"})
	}
	return l, nil
}
