// Command podvisor is the podvisor daemon: a Kubernetes CRI runtime that runs
// every pod in its own virtual machine.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "podvisor: the CRI service is not implemented yet")
	os.Exit(1)
}
