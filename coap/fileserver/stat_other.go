//go:build !linux

package fileserver

// unchanged reports whether the open file still has the size and
// modification time it had when its ETag was computed.
func unchanged(of *openFile) bool {
	st, err := of.f.Stat()
	return err == nil && st.Size() == of.size && st.ModTime().Equal(of.mod)
}
