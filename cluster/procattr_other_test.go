//go:build !linux

package cluster

import "syscall"

// childAttrs: only Linux can tie a child's life to the test binary's.
func childAttrs() *syscall.SysProcAttr { return nil }
