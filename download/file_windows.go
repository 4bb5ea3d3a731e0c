//go:build windows

package download

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/windows"
)

// noFollow: Windows opens follow reparse points; resolveOutput and
// openPart's check refuse a .part that is not a regular file first.
const noFollow = 0

// renameHeld renames the .part into place. Windows cannot rename a file
// that is open (Go opens files without FILE_SHARE_DELETE): it is closed,
// and its lock released, first.
func renameHeld(f *os.File, from, to string) error {
	f.Close()
	return os.Rename(from, to)
}

// openInPlace opens a device to write the body into.
func openInPlace(_ context.Context, path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY, 0)
}

// lockFile takes an exclusive lock (LockFileEx) on f for as long as it
// stays open; held by another open of the file, it fails at once with
// ErrLocked.
func lockFile(f *os.File) error {
	var ol windows.Overlapped
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return fmt.Errorf("%w: %s is locked by another download", ErrLocked, f.Name())
	}
	if err != nil {
		return fmt.Errorf("download: lock %s: %w", f.Name(), err)
	}
	return nil
}
