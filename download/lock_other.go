//go:build !unix && !windows

package download

import "os"

// dirSyncSupported: not known to work here.
const dirSyncSupported = false

// lockFile does nothing where the platform has no file locks (js, wasip1,
// plan9): two downloads of one path are not kept apart there.
func lockFile(*os.File) error { return nil }
