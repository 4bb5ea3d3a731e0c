//go:build unix

package durable

// dirSyncSupported: a folder can be fsynced, which makes a rename in it
// durable.
const dirSyncSupported = true
