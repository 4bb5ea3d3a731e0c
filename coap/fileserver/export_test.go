package fileserver

import "time"

// SetTestHooks sets how long a request waits for a file being prepared,
// and functions the server calls, in the goroutine that prepares a file,
// just before it opens it (after the look at what the path names) and
// just before it hashes it. Call it before the server serves.
func SetTestHooks(s *Server, prepareWait time.Duration, open, hash func(name string)) {
	s.prepareWait, s.openHook, s.hashHook = prepareWait, open, hash
}

// BufferLinger is how long a TCP connection keeps its buffers after a frame.
const BufferLinger = bufferLinger

// Draining reports whether Shutdown has begun.
func Draining(s *Server) bool { return s.draining.Load() }

// Revalidate is how long a cached file goes before its path is looked up again.
const Revalidate = revalidate
