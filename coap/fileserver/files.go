package fileserver

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-iot/tether/coap"
)

// The open-file cache. A request finds the file its path names here, ready
// to serve (open, checked, its ETag known), or finds it being prepared: the
// open, the checks on the descriptor and the hash run in a goroutine of
// their own (prepare), one per path at a time, so that no request ever
// waits for the open or the hash of a file it did not ask for. What a
// request for a file being prepared gets is wait.go's.

// maxOpen bounds the open-file cache.
const maxOpen = 64

// openFile is a cached open file, valid while the path still names the same
// unchanged file; or, with f nil, a resource held in memory (a listing).
type openFile struct {
	f        *os.File
	data     []byte // the content when f is nil
	size     int64
	mod      time.Time
	etag     [8]byte
	format   coap.MediaType
	checked  time.Time // when the path was last seen to name this file
	statted  time.Time // when the open file was last seen unchanged
	lastUsed time.Time

	// A read-ahead window: one pread serves many blocks in a row.
	winMu  sync.Mutex
	win    []byte
	winOff int64
	winLen int
}

// readAhead is the size of an open file's read-ahead window.
const readAhead = 32 << 10

// readAt copies the file's bytes at off into p, through the window when p
// fits in it.
func (of *openFile) readAt(p []byte, off int64) error {
	if of.f == nil {
		copy(p, of.data[off:])
		return nil
	}
	if len(p) > readAhead {
		_, err := of.f.ReadAt(p, off)
		if errors.Is(err, io.EOF) && off+int64(len(p)) <= of.size {
			err = nil
		}
		return err
	}
	of.winMu.Lock()
	defer of.winMu.Unlock()
	if off < of.winOff || off+int64(len(p)) > of.winOff+int64(of.winLen) {
		if of.win == nil {
			of.win = make([]byte, readAhead)
		}
		n, err := of.f.ReadAt(of.win, off)
		if err != nil && !errors.Is(err, io.EOF) {
			of.winLen = 0
			return err
		}
		of.winOff, of.winLen = off, n
		if n < len(p) {
			return io.ErrUnexpectedEOF // the file shrank under us
		}
	}
	copy(p, of.win[off-of.winOff:])
	return nil
}

// revalidate is how often the path of a cached file is looked up again, to
// notice a file replaced under its name. Replace files atomically (write a
// new one, rename it over the old): a transfer that started on the old file
// keeps being served the old version, under the old ETag, until then.
const revalidate = 100 * time.Millisecond

// restat is how often an open file is checked (one fstat, no path lookup)
// for a change in place, which would make its ETag stale. Writing a file in
// place while it is served is a race at any interval; this keeps the window
// at a millisecond without a syscall per block.
const restat = time.Millisecond

// prep is a file being prepared for a path: opened, checked on its
// descriptor, its ETag computed. It is the error open returns meanwhile.
// of and err are set before done is closed.
type prep struct {
	done chan struct{}
	of   *openFile
	err  error
	job  atomic.Pointer[hashJob] // the hash it waits for, once the file is open
}

func (p *prep) Error() string { return "fileserver: file being prepared" }

// errNotRegular is what a path that names anything but a regular file
// (a directory, a FIFO, a device, a socket) opens to: answered 4.04.
var errNotRegular = fmt.Errorf("not a regular file: %w", fs.ErrNotExist)

// open returns the open file that key (a path relative to the root, as
// cleanPath makes it) names, ready to serve. A file not in the cache, or
// changed since it was cached, is prepared in the background: open then
// returns the *prep to wait for. Nothing slow runs under s.mu, and a
// cached file allocates nothing.
func (s *Server) open(key []byte) (*openFile, error) {
	now := time.Now()
	s.mu.Lock()
	of := s.files[string(key)] // no allocation for the lookup
	var statted, checked time.Time
	if of != nil {
		statted, checked = of.statted, of.checked
		if now.Sub(statted) < restat && now.Sub(checked) < revalidate {
			of.lastUsed = now
			s.mu.Unlock()
			return of, nil
		}
	}
	s.mu.Unlock()
	if of != nil {
		// The checks are system calls on this file alone, made unlocked.
		ok := now.Sub(statted) < restat || unchanged(of)
		recheck := ok && now.Sub(checked) >= revalidate
		if recheck {
			st, err := s.root.Stat(string(key))
			ok = err == nil && sameFile(of, st)
		}
		s.mu.Lock()
		if ok {
			if now.Sub(statted) >= restat {
				of.statted = now
			}
			if recheck {
				of.checked = now
			}
			of.lastUsed = now
			s.mu.Unlock()
			return of, nil
		}
		if s.files[string(key)] == of {
			of.f.Close()
			delete(s.files, string(key))
		}
		s.mu.Unlock()
	}
	return s.startPrep(string(key))
}

// startPrep returns the preparation of name under way, starting one when
// there is none; or the file, when one finished since open looked.
func (s *Server) startPrep(name string) (*openFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrServerClosed
	}
	if of := s.files[name]; of != nil {
		return of, nil
	}
	if p := s.pending[name]; p != nil {
		return nil, p
	}
	p := &prep{done: make(chan struct{})}
	s.pending[name] = p
	s.wg.Add(1)
	go s.prepare(name, p)
	return nil, p
}

// prepare opens name, checks it and finds its ETag, caches the result and
// closes p.done.
func (s *Server) prepare(name string, p *prep) {
	defer s.wg.Done()
	of, err := s.openVersion(name, p)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pending, name)
	if err == nil && s.closed {
		of.f.Close()
		of, err = nil, ErrServerClosed
	}
	if err == nil {
		if old := s.files[name]; old != nil {
			old.f.Close()
		} else if len(s.files) >= maxOpen {
			s.evictLocked()
		}
		s.files[name] = of
	}
	p.of, p.err = of, err
	close(p.done)
}

// openVersion opens name and checks what it opened on the descriptor.
// What the path names is looked at first, so that what is not a regular
// file is not even opened; but a symbolic link can change between that
// look and the open, so the open never blocks (O_NONBLOCK where the
// platform has it: a FIFO opens at once, with no writer) and what decides
// is the fstat of the descriptor: anything but a regular file is refused
// (4.04), and the file served is the one opened, whatever the path names
// later. os.Root follows symbolic links only within the root. The ETag is
// the version's (etag.go).
func (s *Server) openVersion(name string, p *prep) (*openFile, error) {
	now := time.Now()
	if _, err := s.servable(name); err != nil {
		return nil, err // not opened at all: a socket, a device
	}
	if s.openHook != nil {
		s.openHook(name)
	}
	f, err := s.root.OpenFile(name, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = errNotRegular
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	// Times from before the hash: a change while it runs is seen at the
	// next request, which prepares the file again.
	of := &openFile{f: f, size: st.Size(), mod: st.ModTime(), format: coap.ContentFormatFor(name),
		checked: now, statted: now, lastUsed: now}
	if of.etag, err = s.etagOf(name, versionOf(name, st), f, of.size, p); err != nil {
		f.Close()
		return nil, err
	}
	return of, nil
}

// fd returns the descriptor of a regular file; it is not in the network
// poller, so asking for it changes nothing.
func (of *openFile) fd() uintptr { return of.f.Fd() }

// sameFile reports whether st describes the cached file, unchanged.
func sameFile(of *openFile, st fs.FileInfo) bool {
	cur, err := of.f.Stat()
	return err == nil && os.SameFile(cur, st) && st.Size() == of.size && st.ModTime().Equal(of.mod)
}

func (s *Server) evictLocked() {
	var oldest string
	for name, of := range s.files {
		if oldest == "" || of.lastUsed.Before(s.files[oldest].lastUsed) {
			oldest = name
		}
	}
	s.files[oldest].f.Close()
	delete(s.files, oldest)
}
