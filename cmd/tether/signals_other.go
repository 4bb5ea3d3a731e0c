//go:build !unix

package main

import "os"

// Windows (and the other systems without SIGUSR1 and SIGUSR2) has no
// signals to take a running get offline and back: it runs online.
var sigOffline, sigOnline os.Signal
