package qemu

// Release implements hypervisor.VM. QEMU serves one QMP client at a time:
// closing ours is what lets a restarted daemon connect.
func (vm *VM) Release() error {
	vm.mu.Lock()
	vm.stopping = true // an exit from now on is not this handle's to report
	vm.mu.Unlock()
	vm.qmp.close()
	vm.proc.Release()
	return nil
}
