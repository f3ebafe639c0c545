// Package chtest is a fake Cloud Hypervisor for tests: its REST API on a unix
// socket, checked against the OpenAPI spec, with the VM state machine of the
// real VMM, SCM_RIGHTS fd checks on vm.add-net, a hybrid vsock endpoint and
// injectable failures. It runs in-process (NewServer) or as a stand-in
// cloud-hypervisor process (WriteLauncher plus MainIfFakeVMM in TestMain).
//
// It imports kin-openapi and must only ever be imported from _test.go files.
package chtest
