// Command nnp stands in for nnp of Kubernetes' nonewprivs test image: it is
// installed setuid root and prints its effective uid, which is 0 unless the
// container runs with no_new_privs.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("Effective uid: %d\n", os.Geteuid())
}
