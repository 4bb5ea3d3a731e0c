package fileserver

import "syscall"

// unchanged reports whether the open file still has the size and
// modification time it had when its ETag was computed: one fstat on the
// open descriptor, no path lookup and no allocation.
func unchanged(of *openFile) bool {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(of.fd()), &st); err != nil {
		return false
	}
	return st.Size == of.size && st.Mtim.Nano() == of.mod.UnixNano()
}
