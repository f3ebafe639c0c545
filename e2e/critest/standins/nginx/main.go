// Command nginx stands in for nginx in critest's offline web server images.
// It does what the specs look at: it serves HTTP (200 and a small page) on
// every port named by a "listen N;" line of /etc/nginx/conf.d/*.conf (80 by
// default), writes its PID to /var/run/nginx.pid, and runs with nginx's
// master command line, "nginx: master process nginx -g daemon off;", which
// the PID namespace specs grep /proc/1/cmdline for. Its process name (the
// executable's base name) is nginx, which pidof finds.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	masterPrefix = "nginx: master process "
	pidFile      = "/var/run/nginx.pid"
)

func main() {
	if len(os.Args) == 0 || !strings.HasPrefix(os.Args[0], masterPrefix) {
		reexecAsMaster()
	}
	ports := listenPorts("/etc/nginx/conf.d")
	var listeners []net.Listener
	for _, p := range ports {
		l, err := net.Listen("tcp", ":"+strconv.Itoa(p))
		if err != nil {
			fatal(err)
		}
		listeners = append(listeners, l)
	}
	if err := os.MkdirAll(filepath.Dir(pidFile), 0o755); err != nil {
		fatal(err)
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		fatal(err)
	}
	root := "/usr/share/nginx/html"
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("%s - - [%s] \"%s %s %s\" 200\n", r.RemoteAddr, time.Now().Format("02/Jan/2006:15:04:05 -0700"), r.Method, r.URL.Path, r.Proto)
		if r.URL.Path == "/" {
			http.ServeFile(w, r, filepath.Join(root, "index.html"))
			return
		}
		http.FileServer(http.Dir(root)).ServeHTTP(w, r)
	})
	for _, l := range listeners {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(l) }()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	<-sig
	_ = os.Remove(pidFile)
}

// reexecAsMaster replaces the process with itself under nginx's master
// command line; the PID stays the same.
func reexecAsMaster() {
	exe, err := os.Executable()
	if err != nil {
		fatal(err)
	}
	args := "nginx"
	if len(os.Args) > 1 {
		args = strings.Join(append([]string{"nginx"}, os.Args[1:]...), " ")
	}
	fatal(syscall.Exec(exe, []string{masterPrefix + args}, os.Environ()))
}

var listenRE = regexp.MustCompile(`(?m)^\s*listen\s+(?:[^;\s]*:)?(\d+)[^;]*;`)

func listenPorts(dir string) []int {
	files, _ := filepath.Glob(filepath.Join(dir, "*.conf"))
	seen := map[int]bool{}
	var ports []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, m := range listenRE.FindAllStringSubmatch(string(b), -1) {
			if p, err := strconv.Atoi(m[1]); err == nil && !seen[p] {
				seen[p] = true
				ports = append(ports, p)
			}
		}
	}
	if len(ports) == 0 {
		ports = []int{80}
	}
	return ports
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "nginx:", err)
	os.Exit(1)
}
