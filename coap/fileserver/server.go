// Package fileserver serves a directory over CoAP, UDP and TCP, with
// block-wise GET (RFC 7959 Block2, every block size 16..1024, and BERT over
// TCP). It is what tether's demo, its `serve` command and its tests use.
//
// # Usage
//
//	srv, err := fileserver.New("/srv/firmware", nil)
//	pc, _ := net.ListenPacket("udp", ":5683")
//	go srv.ServeUDP(pc)
//	ln, _ := net.Listen("tcp", ":5683")
//	go srv.ServeTCP(ln)
//	...
//	srv.Close()
//
// Serve methods take any net.PacketConn or net.Listener, so the server runs
// on simnet's simulated hosts too.
//
// Every response carries a strong ETag derived from the file's content (the
// first 8 bytes of its SHA-256, recomputed when the file changes), so a
// client that resumes a transfer can tell whether it is still the same
// file; the first block carries Size2; Content-Format follows the file's
// extension. A missing file is 4.04. Paths that try to leave the directory
// (".." segments, symbolic links that point outside it) are refused with
// 4.00 or 4.04 and logged: files are opened through os.Root. Memory per
// client is bounded whatever the file size: a UDP request is served with
// one reusable buffer, a TCP connection with two fixed ones.
//
// fileserver depends on package coap only, and on the standard library.
package fileserver

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/tether-iot/tether/coap"
)

// Options configure a Server; nil means the defaults.
type Options struct {
	// Logger receives a record per refused path and per failure; nil
	// means slog.Default().
	Logger *slog.Logger
	// MaxBERT caps the payload of one BERT message over TCP; zero means
	// 64 KiB. The client's Max-Message-Size caps it further.
	MaxBERT int
	// MaxBlockSize is the largest block the server sends, 16..1024 (a
	// power of two); zero means 1024. A client that asks for larger
	// blocks gets blocks of this size, as RFC 7959 2.4 lets a server do
	// (a constrained server's choice), and no BERT.
	MaxBlockSize int
}

// Server serves the files of one directory. Its methods are safe for
// concurrent use.
type Server struct {
	root     *os.Root
	log      *slog.Logger
	maxBERT  int
	maxBlock int

	mu     sync.Mutex
	files  map[string]*openFile // recently used files, at most maxOpen
	closed bool
	conns  map[io.Closer]struct{}
	wg     sync.WaitGroup
}

// maxOpen bounds the open-file cache.
const maxOpen = 64

// openFile is a cached open file, valid while the path still names the same
// unchanged file.
type openFile struct {
	f        *os.File
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

// New returns a Server for the files under dir.
func New(dir string, opts *Options) (*Server, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	s := &Server{root: root, log: slog.Default(), maxBERT: 64 << 10, maxBlock: 1024,
		files: make(map[string]*openFile), conns: make(map[io.Closer]struct{})}
	if opts != nil {
		if opts.Logger != nil {
			s.log = opts.Logger
		}
		if opts.MaxBERT > 0 {
			s.maxBERT = opts.MaxBERT &^ 1023
		}
		if opts.MaxBlockSize != 0 {
			if _, err := coap.SZXFor(opts.MaxBlockSize); err != nil {
				root.Close()
				return nil, fmt.Errorf("fileserver: MaxBlockSize: %w", err)
			}
			s.maxBlock = opts.MaxBlockSize
		}
	}
	if s.maxBERT < 1024 {
		s.maxBERT = 1024
	}
	return s, nil
}

// Close stops every Serve call, closes their listeners and connections,
// waits for them, and releases the open files. A Serve call after Close
// closes what it is given and returns ErrServerClosed.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, of := range s.files {
		of.f.Close()
		delete(s.files, name)
	}
	return s.root.Close()
}

// track registers a listener or connection to close on Close; false when
// the server is closed already.
func (s *Server) track(c io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c io.Closer) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// ErrServerClosed is returned by the Serve methods after Close.
var ErrServerClosed = errors.New("fileserver: server closed")

// errRefused marks a path that is not allowed; it is answered 4.00.
var errRefused = errors.New("path refused")

// open returns the cached open file for name, re-opening it when the path
// now names another file or the file changed.
func (s *Server) open(key []byte) (*openFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if of := s.files[string(key)]; of != nil { // no allocation for the lookup
		if now.Sub(of.statted) < restat || unchanged(of) {
			if now.Sub(of.statted) >= restat {
				of.statted = now
			}
			if now.Sub(of.checked) < revalidate {
				of.lastUsed = now
				return of, nil
			}
			if st, err := s.root.Stat(string(key)); err == nil && sameFile(of, st) {
				of.checked, of.lastUsed = now, now
				return of, nil
			}
		}
		of.f.Close()
		delete(s.files, string(key))
	}
	name := string(key)
	f, err := s.root.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fs.ErrNotExist
	}
	of := &openFile{f: f, size: st.Size(), mod: st.ModTime(), format: coap.ContentFormatFor(name), checked: now, statted: now, lastUsed: now}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, of.size)); err != nil {
		f.Close()
		return nil, err
	}
	copy(of.etag[:], h.Sum(nil))
	if len(s.files) >= maxOpen {
		s.evictLocked()
	}
	s.files[name] = of
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

// cleanPath appends the Uri-Path segments of a request, joined by "/", to
// dst: a name relative to the root. Segments that could climb out of it are
// refused.
func cleanPath(dst []byte, opts coap.Options) ([]byte, error) {
	for _, o := range opts {
		if o.ID != coap.URIPath {
			continue
		}
		seg := o.Value
		if len(seg) == 0 || string(seg) == "." || string(seg) == ".." || bytes.ContainsAny(seg, "/\\\x00") {
			return dst, errRefused
		}
		if len(dst) > 0 {
			dst = append(dst, '/')
		}
		dst = append(dst, seg...)
	}
	if len(dst) == 0 {
		return dst, fs.ErrNotExist
	}
	return dst, nil
}
