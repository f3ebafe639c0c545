// Command cnidefault installs podvisor's default CNI network config
// (network.DefaultConflist) into a conf dir that has none, or prints it.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/podvisor/podvisor/network"
)

func main() {
	confDir := flag.String("conf-dir", network.Default().ConfDir, "CNI config directory")
	printOnly := flag.Bool("print", false, "print the default conflist and exit")
	flag.Parse()
	if *printOnly {
		fmt.Print(network.DefaultConflist)
		return
	}
	wrote, err := network.WriteDefaultConflist(*confDir)
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "cnidefault:", err)
		os.Exit(1)
	case wrote:
		fmt.Printf("wrote %s/%s\n", *confDir, network.DefaultConflistName)
	default:
		fmt.Printf("%s already holds a network config; left unchanged\n", *confDir)
	}
}
