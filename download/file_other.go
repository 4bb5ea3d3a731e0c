//go:build !unix && !windows

package download

import (
	"context"
	"os"
)

// noFollow: no such flag here.
const noFollow = 0

// renameHeld renames the .part into place.
func renameHeld(_ *os.File, from, to string) error { return os.Rename(from, to) }

// openInPlace opens a device to write the body into.
func openInPlace(_ context.Context, path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY, 0)
}

// lockFile does nothing where the platform has no file locks (js, wasip1,
// plan9): two downloads of one path are not kept apart there.
func lockFile(*os.File) error { return nil }
