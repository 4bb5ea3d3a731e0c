//go:build !unix

package main

import "os"

// Windows has no SIGUSR1 or SIGUSR2: get takes no offline signals there.
var offlineSignal, onlineSignal os.Signal
