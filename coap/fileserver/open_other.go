//go:build !unix

package fileserver

import "io/fs"

// openFlags are none: where there is no O_NONBLOCK there are no FIFOs
// that block an open (Windows' named pipes live outside the file system).
const openFlags = 0

// versionOf identifies the content of an open file by its path, size and
// modification time, where the platform has no inode numbers to use.
func versionOf(name string, st fs.FileInfo) versionKey {
	return versionKey{name: name, size: st.Size(), mtime: st.ModTime().UnixNano()}
}
