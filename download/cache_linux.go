//go:build linux

package download

import (
	"os"

	"golang.org/x/sys/unix"
)

// dropCache asks the kernel to forget f's cached pages (clean once f is
// synced), so that what is read next comes from the disk: a check of what
// the disk holds, not of what memory remembers.
func dropCache(f *os.File) {
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}
