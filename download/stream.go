package download

import (
	"fmt"
	"io"
	"time"
)

// Stream adapts a writer that takes bytes only in order (standard output,
// a pipe, a flash programmer) to a download's destination. A download
// writes its destination strictly in order, each byte once, so suspending
// and resuming work as with a file; what a stream cannot do is start over
// (a Restart policy fails as Fail does) or survive the process.
func Stream(w io.Writer) io.WriterAt { return &stream{w: w} }

type stream struct {
	w   io.Writer
	off int64
}

// WriteAt implements io.WriterAt for the offset that comes next only.
func (s *stream) WriteAt(p []byte, off int64) (int, error) {
	if off != s.off {
		return 0, fmt.Errorf("download: a stream written at byte %d after %d bytes", off, s.off)
	}
	n, err := s.w.Write(p)
	s.off += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return n, err
}

// SetWriteDeadline passes a deadline on to the writer when it takes one
// (an *os.File on a pipe does), so a stalled reader cannot hold a download
// past its context.
func (s *stream) SetWriteDeadline(t time.Time) error {
	if wd, ok := s.w.(interface{ SetWriteDeadline(time.Time) error }); ok {
		return wd.SetWriteDeadline(t)
	}
	return nil
}
