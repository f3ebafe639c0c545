package cloudhypervisor

// Release implements hypervisor.VM. The API is plain HTTP over a unix
// socket that serves any number of clients; the handle only stops
// reporting the VMM's exit and watching its process.
func (v *VM) Release() error {
	v.mu.Lock()
	v.stopping = true
	v.released = true
	v.mu.Unlock()
	v.proc.Release()
	return nil
}
