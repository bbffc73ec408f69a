package cluster

import "syscall"

// childAttrs makes the kernel kill a child (redis-server, caddy) when the
// test binary dies without its cleanups, e.g. at a go test -timeout panic,
// so that no process outlives the tests.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
