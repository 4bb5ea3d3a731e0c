//go:build !unix

package durable

// dirSyncSupported: Windows cannot open a folder to sync it (a rename
// there is as durable as NTFS's journal makes it); elsewhere not known to
// work.
const dirSyncSupported = false
