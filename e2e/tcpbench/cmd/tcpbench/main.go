// Command tcpbench is the tcpbench package as a static program for pod
// containers:
//
//	tcpbench server -listen :5201
//	tcpbench send -to 10.89.64.2:5201 -bytes 134217728 -time 5s
//
// send prints the result as one JSON object.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/podvisor/podvisor/e2e/tcpbench"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tcpbench server|send [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "server":
		err = server(os.Args[2:])
	case "send":
		err = send(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tcpbench:", err)
		os.Exit(1)
	}
}

func server(args []string) error {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	listen := fs.String("listen", ":5201", "address to listen on")
	_ = fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Println("listening on", ln.Addr())
	return tcpbench.Serve(ln)
}

func send(args []string) error {
	fs := flag.NewFlagSet("send", flag.ExitOnError)
	to := fs.String("to", "", "server address, host:port")
	maxBytes := fs.Int64("bytes", 64<<20, "bytes to send at most")
	maxTime := fs.Duration("time", 5*time.Second, "time to send for at most")
	_ = fs.Parse(args)
	ctx, cancel := context.WithTimeout(context.Background(), *maxTime+time.Minute)
	defer cancel()
	res, err := tcpbench.Send(ctx, *to, *maxBytes, *maxTime)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
