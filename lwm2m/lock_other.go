//go:build !unix && !windows

package lwm2m

// lockDir does nothing where lwm2m has no file lock (plan9, js, wasip1).
func lockDir(string) (func(), error) { return func() {}, nil }
