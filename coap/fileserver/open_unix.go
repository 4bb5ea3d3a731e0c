//go:build unix

package fileserver

import (
	"io/fs"
	"syscall"
)

// openFlags are added to O_RDONLY when a file is opened: O_NONBLOCK makes
// opening a FIFO return at once, with no writer (reads of a regular file
// ignore it); O_NOCTTY keeps a terminal from becoming the process's.
const openFlags = syscall.O_NONBLOCK | syscall.O_NOCTTY

// versionOf identifies the content of an open file: device, inode, size
// and modification time. Two paths to one file share its version.
func versionOf(name string, st fs.FileInfo) versionKey {
	v := versionKey{size: st.Size(), mtime: st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		v.dev, v.ino = uint64(sys.Dev), uint64(sys.Ino)
	} else {
		v.name = name
	}
	return v
}
