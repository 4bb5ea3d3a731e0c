//go:build !unix

package lwm2m

// lockDir does nothing where lwm2m has no file lock yet (Windows would use
// LockFileEx, as package download does for its .part files).
func lockDir(string) (func(), error) { return func() {}, nil }
