//go:build !unix

package main

import "os"

// statsSignal is nil where there is no SIGUSR1 (Windows): the statistics
// print only when the relay ends.
var statsSignal os.Signal
