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
// What is served is decided once, for GET and for the listing below: each
// Uri-Path segment must be non-empty, not "." or "..", at most 255 bytes,
// with no "/", "\" or NUL (else 4.00); the path must name a regular file
// under the directory, symbolic links followed only within it (else 4.04:
// directories, devices, FIFOs, sockets and links that lead out are not
// served). Names starting with a dot are served like any other.
//
// # Discovery
//
// GET /.well-known/core answers with the files served, in the CoRE link
// format (RFC 6690, Content-Format 40), one link per file, by path in name
// order, subdirectories depth first:
//
//	</fw.bin>;ct=42;sz=21000,</small.json>;ct=50;sz=7,</sub/x.txt>;ct=0;sz=3
//
// ct is the Content-Format a GET of the file carries, sz its size (RFC
// 7959 section 4). Paths are percent-encoded. The listing is served like a
// file: block-wise at any block size (BERT too), with Size2 and an ETag
// derived from its content, and it obeys the same rules: only files a GET
// would serve are listed, never anything outside the directory. Symbolic
// links to directories are not descended (so no cycle), and a file of the
// directory named .well-known/core is hidden by the listing. Uri-Query
// filters it (RFC 6690 4.1): href=, ct= or sz=, each value exact or ending
// in "*" for a prefix; several must all hold, and a query on any other
// attribute matches nothing.
//
// The listing is bounded: at most 16 KiB, ending at the last whole link
// that fits, made from at most 4096 directory entries read (all
// directories together; past that, which entries are read is the file
// system's order), and made at most once a second, so a directory of any
// size costs bounded memory and time however often it is asked for. A
// truncated listing is logged once.
//
// # Options
//
// A request is checked before anything else for critical options (odd
// numbers) the server does not recognize (RFC 7252 5.4.1): a number it
// does not know, a value of a length the option does not allow (5.4.3), a
// non-repeatable option repeated (5.4.5). Such a request is answered 4.02
// Bad Option with a diagnostic payload ("unknown critical option 2049"),
// over TCP and TLS, and over UDP and DTLS when Confirmable; a
// Non-confirmable one is rejected with a Reset, as 5.4.1 requires.
// Elective options (even numbers) that are unknown, repeated or of the
// wrong length are ignored. The options recognized, and what they do:
//
//   - Uri-Path (11): the file. Uri-Host (3) and Uri-Port (7): accepted, and
//     ignored: one origin answers for every name and port.
//   - Uri-Query (15): filters the listing; ignored for a file.
//   - Proxy-Uri (35), Proxy-Scheme (39): 5.05 Proxying Not Supported.
//   - Block2 (23) and Size2 (28): block-wise transfer (RFC 7959); Block1
//     (27) is accepted, and only GET is served (4.05 for other methods),
//     so no request body is ever read.
//   - If-Match (1): 4.12 Precondition Failed unless one value is empty or
//     equals the resource's ETag. If-None-Match (5): 4.12, the resource
//     exists. Both apply only to a resource that exists: 4.04 comes first.
//   - Accept (17): 4.06 Not Acceptable unless it names the resource's
//     Content-Format.
//   - ETag (4), Observe (6) and every other elective option: ignored (no
//     2.03 Valid, no notifications).
//   - Q-Block2 (31), over UDP and DTLS: block-wise transfer in bursts
//     (RFC 9177), below. Over TCP it is unrecognized: BERT does that job.
//
// Any other critical option gets 4.02: OSCORE (9), EDHOC (21) and Q-Block1
// (19) among them (the 4.02 is how a client of RFC 9177 learns that a
// server does not do Q-Block, as it does from a server with
// Options.NoQBlock). The checks run in this order: options, proxying,
// method, path, existence, If-Match and If-None-Match, Accept, then the
// block asked for.
//
// # Q-Block2
//
// Over UDP and DTLS, a Non-confirmable GET with Q-Block2 options is
// answered with its blocks as Non-confirmable responses, each with
// Q-Block2, ETag and Size2:
//
//	QB2:n/0/sz       block n
//	QB2:n/1/sz       block n and the rest of its set (a set is MAX_PAYLOADS
//	                 blocks, the first a multiple of MAX_PAYLOADS)
//	QB2:0/1/sz       the whole body: the first set now, the others paced
//	QB2:k·MP/1/sz    "Continue": that set now, the others paced
//
// Several options in one request (the blocks a client lost, and its
// Continue) must come in increasing block order and with one size (else
// 4.00); each block is sent once, at most two sets per request. Pacing:
// the set after those sent follows without a request NON_TIMEOUT_RANDOM
// later (a Continue brings it at once); with no word from the client each
// wait doubles, and after NON_MAX_RETRANSMIT sets in a row the transfer
// pauses until the client asks again, and is forgotten after
// NON_PARTIAL_TIMEOUT. A Confirmable request gets the first block it asks
// for, piggybacked, and nothing more. Options.QBlock sets the parameters.
//
// A burst goes only to an address that has shown it receives, so that a
// forged source address cannot make the server an amplifier (RFC 7252
// 11.3): the answer to a Confirmable Q-Block2 request carries an Echo
// option (RFC 9175) whose value, repeated in a request, verifies the
// address for ten minutes; a request for more than one block from an
// address not verified is answered 4.01 Unauthorized with the value, and
// nothing else.
//
// fileserver depends on package coap only, and on the standard library.
package fileserver

import (
	"bytes"
	crand "crypto/rand"
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
	// QBlock are the congestion control parameters of Q-Block2 transfers
	// (RFC 9177 7.2) over UDP and DTLS; zero fields are the defaults.
	QBlock coap.NonParams
	// NoQBlock turns Q-Block2 off: its option is then unrecognized, and
	// answered 4.02 Bad Option, as over TCP.
	NoQBlock bool
}

// Server serves the files of one directory. Its methods are safe for
// concurrent use.
type Server struct {
	root     *os.Root
	log      *slog.Logger
	maxBERT  int
	maxBlock int
	non      coap.NonParams // with defaults
	echoKey  [32]byte       // for Echo values (echo.go)
	noQBlock bool

	mu     sync.Mutex
	files  map[string]*openFile // recently used files, at most maxOpen
	closed bool
	conns  map[io.Closer]struct{}
	wg     sync.WaitGroup

	listing listing // /.well-known/core
}

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

// New returns a Server for the files under dir.
func New(dir string, opts *Options) (*Server, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	s := &Server{root: root, log: slog.Default(), maxBERT: 64 << 10, maxBlock: 1024,
		files: make(map[string]*openFile), conns: make(map[io.Closer]struct{}),
		listing: listing{ttl: listingTTL, maxBytes: maxListing, maxScan: maxScan}}
	if opts != nil {
		if opts.Logger != nil {
			s.log = opts.Logger
		}
		if opts.MaxBERT > 0 {
			s.maxBERT = opts.MaxBERT &^ 1023
		}
		if err := opts.QBlock.Validate(); err != nil {
			root.Close()
			return nil, fmt.Errorf("fileserver: QBlock: %w", err)
		}
		s.non, s.noQBlock = opts.QBlock, opts.NoQBlock
		if opts.MaxBlockSize != 0 {
			if _, err := coap.SZXFor(opts.MaxBlockSize); err != nil {
				root.Close()
				return nil, fmt.Errorf("fileserver: MaxBlockSize: %w", err)
			}
			s.maxBlock = opts.MaxBlockSize
		}
	}
	s.non = s.non.WithDefaults()
	crand.Read(s.echoKey[:])
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
	if _, err := s.servable(name); err != nil {
		return nil, err // before the open: opening a FIFO would block until a writer comes
	}
	f, err := s.root.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() { // replaced since servable looked
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

// What the server serves is decided in two places, which GET and the
// /.well-known/core listing both apply: segmentOK for each segment of the
// path, servable for what the path names.

// servable returns the file information of name (a path relative to the
// root, as cleanPath makes it) when the server serves it: a regular file
// under the root, symbolic links followed only within it (os.Root refuses
// the others). Directories, devices, FIFOs and sockets are fs.ErrNotExist.
func (s *Server) servable(name string) (fs.FileInfo, error) {
	st, err := s.root.Stat(name)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fs.ErrNotExist
	}
	return st, nil
}

// segmentOK reports whether a Uri-Path segment may name something under
// the root: not empty, "." or "..", no longer than an option allows, with
// no separator or NUL. Other segments are refused (4.00).
func segmentOK(seg []byte) bool {
	return len(seg) > 0 && len(seg) <= maxSegment && string(seg) != "." && string(seg) != ".." &&
		!bytes.ContainsAny(seg, "/\\\x00")
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
		if !segmentOK(seg) {
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
