//go:build unix

package main

import (
	"os"
	"syscall"
)

// The signals that take a running get offline and bring it back, as a
// modem manager's script would send them.
var (
	sigOffline os.Signal = syscall.SIGUSR1
	sigOnline  os.Signal = syscall.SIGUSR2
)
