//go:build unix

package main

import (
	"os"
	"syscall"
)

// The signals that take a running get offline and bring it back.
var offlineSignal, onlineSignal os.Signal = syscall.SIGUSR1, syscall.SIGUSR2
