//go:build windows

package download

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/windows"
)

// dirSyncSupported: Windows cannot open a directory to sync it; a rename
// there is as durable as NTFS's journal makes it.
const dirSyncSupported = false

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
