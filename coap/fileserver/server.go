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
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
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
}

// Server serves the files of one directory. Its methods are safe for
// concurrent use.
type Server struct {
	root    *os.Root
	log     *slog.Logger
	maxBERT int

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
	lastUsed time.Time
}

// New returns a Server for the files under dir.
func New(dir string, opts *Options) (*Server, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	s := &Server{root: root, log: slog.Default(), maxBERT: 64 << 10,
		files: make(map[string]*openFile), conns: make(map[io.Closer]struct{})}
	if opts != nil {
		if opts.Logger != nil {
			s.log = opts.Logger
		}
		if opts.MaxBERT > 0 {
			s.maxBERT = opts.MaxBERT &^ 1023
		}
	}
	if s.maxBERT < 1024 {
		s.maxBERT = 1024
	}
	return s, nil
}

// Close stops every Serve call, closes their listeners and connections,
// waits for them, and releases the open files.
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
func (s *Server) open(name string) (*openFile, error) {
	st, err := s.root.Stat(name)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fs.ErrNotExist
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if of := s.files[name]; of != nil {
		if cur, err := of.f.Stat(); err == nil && os.SameFile(cur, st) && cur.Size() == of.size && cur.ModTime().Equal(of.mod) {
			of.lastUsed = time.Now()
			return of, nil
		}
		of.f.Close()
		delete(s.files, name)
	}
	f, err := s.root.Open(name)
	if err != nil {
		return nil, err
	}
	st, err = f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	of := &openFile{f: f, size: st.Size(), mod: st.ModTime(), lastUsed: time.Now()}
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

// cleanPath joins the Uri-Path segments of a request into a name relative
// to the root, refusing segments that could climb out of it.
func cleanPath(opts coap.Options) (string, error) {
	var b strings.Builder
	for _, o := range opts {
		if o.ID != coap.URIPath {
			continue
		}
		seg := string(o.Value)
		if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "/\\\x00") {
			return "", errRefused
		}
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(seg)
	}
	if b.Len() == 0 {
		return "", fs.ErrNotExist
	}
	return b.String(), nil
}
