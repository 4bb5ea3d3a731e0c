//go:build !unix

package main

import "os"

// sigStats is nil where there is no SIGUSR1 (Windows): the statistics come
// when the relay ends.
var sigStats os.Signal
