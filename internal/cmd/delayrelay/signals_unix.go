//go:build unix

package main

import (
	"os"
	"syscall"
)

// sigStats asks for the statistics so far.
var sigStats os.Signal = syscall.SIGUSR1
