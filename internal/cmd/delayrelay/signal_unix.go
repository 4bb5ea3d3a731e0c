//go:build unix

package main

import (
	"os"
	"syscall"
)

// statsSignal prints the statistics and lets the relay go on.
var statsSignal os.Signal = syscall.SIGUSR1
