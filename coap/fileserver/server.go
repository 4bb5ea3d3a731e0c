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
// 4.00 or 4.04 and logged: files are opened through os.Root (see Files
// below for when a file is opened and hashed). Memory per
// client is bounded whatever the file size: a UDP request is served with
// one reusable buffer, a TCP connection with two pooled ones while it is
// busy and none while it is idle (TCP and TLS, below).
//
// What is served is decided once, for GET and for the listing below: each
// Uri-Path segment must be non-empty, not "." or "..", at most 255 bytes,
// with no "/", "\" or NUL (else 4.00); the path must name a regular file
// under the directory, symbolic links followed only within it (else 4.04:
// directories, devices, FIFOs, sockets, links that lead out or in a loop,
// and paths below a regular file, "small/x", are not served). Names
// starting with a dot are served like any other.
//
// # Files
//
// No request waits for the open or the hash of a file it did not ask for.
// The first request for a file (or for a new version of it) has it
// prepared in a goroutine of its own: opened, checked on the open
// descriptor, its ETag computed. The open never blocks (O_NONBLOCK where
// the platform has it, so a FIFO that a symbolic link came to name opens
// at once), and what is served is what the fstat of the descriptor shows
// to be a regular file, whatever the path names afterwards; anything else
// is 4.04. The ETag is computed once per version of the content (device,
// inode, size and modification time), shared by the concurrent requests
// and by every path that names it, and remembered for 4096 versions.
//
// Meanwhile, the request waits for its own file only, up to a second: over
// TCP and TLS in its connection's goroutine; over UDP and DTLS, whose one
// loop serves every client of a socket, its datagram is set aside (64 at
// most per socket) and answered once the file is ready. A file not ready
// by then (a hash of a few GB) is answered 5.03 Service Unavailable with a
// Max-Age of the seconds its hash still needs, estimated from its
// progress (1 to 60); tether's client waits that long and asks again.
//
// # TCP and TLS
//
// Each connection is served by a goroutine of its own, within three
// bounds (Options): at most MaxConns connections at once over every
// listener (one accepted past it is closed at once); a connection on
// which no whole frame arrived for IdleTimeout is closed, so a client
// keeps an idle one with CoAP Pings (RFC 8323 5.4); a frame whose first
// byte arrived, a TLS handshake and the write of a response each have
// FrameTimeout. The buffers a connection serves with (about twice MaxBERT)
// are pooled: it gives them back a second after its last frame and reads
// the next one's first byte with none, so an idle connection holds under
// a kilobyte of heap and memory returns to where it was once connections
// close.
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
// for piggybacked in the ACK, and the rest as a Non-confirmable request
// would (Non-confirmable, paced). Options.QBlock sets the parameters.
//
// A burst goes only to an address that has shown it receives, so that a
// forged source address cannot make the server an amplifier (RFC 7252
// 11.3): the answer to a Confirmable Q-Block2 request for one block
// carries an Echo option (RFC 9175) whose value, repeated in a request
// within the minute (or the next), proves the address for the transfer
// that request starts; the requests of a transfer in progress draw bursts
// with or without it, and nothing else does. A request for more than one
// block without that proof, Confirmable or not, is unproven: it is
// answered 4.01 Unauthorized with the value, and nothing else (RFC 9175
// 2.4: a server verifies a client's reachability before it sends a
// response larger than the request), and the request repeated with the
// value draws the burst. A client of RFC 9177 that asks for block 0 on its
// own first (tether's) never meets the 4.01; libcoap's, which asks for the
// whole body at once, repeats the request with the value by itself, in
// CON mode as in NON. A Q-Block2 GET in an ACK (malformed, RFC 7252 4.2;
// libcoap 4.3.5's client in CON mode asks for lost blocks so) is served
// as a Non-confirmable one.
//
// # Access log
//
// The server writes one Info record, "transfer", per transfer that ended,
// with the transport (udp, dtls, tcp, tls), the client's address
// (remote), its identity where Options.PeerIdentity gives one (a DTLS
// session's PSK identity), the path, the body bytes and the blocks sent,
// the duration from the first block to the last, and the result. A
// block-wise transfer is stateless on the server (each block is a request
// of its own), so a transfer is defined by what the server sent: the
// blocks of one version of one file (its ETag) served to one client
// (address over UDP; the session or connection otherwise) from the first
// to the one that carries the body's last byte, in any order, by any
// mechanism (Block2 in lockstep or with a window, BERT, Q-Block2 bursts
// and paced sets, a small body whole).
//
//   - Over TCP and TLS the line is written as the last block is sent:
//     result 2.05.
//   - Over UDP and DTLS, two seconds later: blocks asked for again
//     meanwhile (lost ones, of a window or a burst) are counted with it,
//     in bytes and blocks, which are what was sent, not the body's size.
//   - A transfer of which no block was served for a minute, or still
//     open when its connection, session or the server closes, is written
//     with result "incomplete": a client that gave up, or one that
//     resumes later (a resumed download is a new transfer, from its
//     offset).
//   - Every error response (4.xx, 5.xx) is a line of its own, with its
//     code as the result ("4.04") and no bytes: a 4.01 asking a Q-Block2
//     client for an Echo and a 5.03 for a file being prepared too.
//
// Each serving loop follows at most 4096 transfers; past it the one
// served least recently is written, incomplete. Options.Observer is told
// the same lines, and counts of requests, blocks, connections, handshakes
// and refusals, so that a program can export metrics without this
// package importing a metrics library.
//
// # Shutdown
//
// Shutdown drains before it closes: connections and sessions accepted
// from then on are closed at once, a request that would start a transfer
// is answered 5.03 with a Max-Age of 5 s, and the transfers in flight
// (above: from their first block to their last) are served on until none
// is left or its context ends; it returns how many were in flight, how
// many it cut off, and how long it took.
//
// fileserver depends on package coap only, and on the standard library.
package fileserver

import (
	"bytes"
	"cmp"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-iot/tether/coap"
)

// Options configure a Server; nil means the defaults.
type Options struct {
	// Logger receives a record per refused path and per failure, and at
	// Info the access log (package doc); nil means slog.Default().
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

	// MaxConns bounds the TCP and TLS connections served at once, over
	// every listener; one accepted past it is closed at once. Zero means
	// DefaultMaxConns (4096), a negative value no bound.
	MaxConns int
	// IdleTimeout closes a TCP or TLS connection on which no whole frame
	// arrived for that long; a client's CoAP Pings (RFC 8323 5.4) keep it.
	// Zero means DefaultIdleTimeout (5 minutes), a negative value never.
	IdleTimeout time.Duration
	// FrameTimeout closes a TCP or TLS connection on which a frame whose
	// first byte arrived is not whole that long after, or whose TLS
	// handshake, or the write of a response, takes longer. Zero means
	// DefaultFrameTimeout (10 s), a negative value never.
	FrameTimeout time.Duration

	// Observer, if set, is told of every request, block, transfer,
	// connection, handshake and refusal, for metrics.
	Observer Observer
	// PeerIdentity, if set, names the client of a DTLS session or TLS
	// connection in the access log: its PSK identity, its certificate's
	// subject. It is called once per session or connection, after its
	// handshake.
	PeerIdentity func(net.Conn) string
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

	mu       sync.Mutex
	files    map[string]*openFile    // recently used files, at most maxOpen (files.go)
	pending  map[string]*prep        // files being prepared, by path
	versions map[versionKey]*hashJob // ETags of file versions, at most maxVersions (etag.go)
	closed   bool
	done     chan struct{} // closed by Close
	conns    map[io.Closer]struct{}
	wg       sync.WaitGroup

	prepareWait time.Duration     // prepareWait, but for tests
	openHook    func(name string) // called before a file is opened, by tests
	hashHook    func(name string) // called before a file is hashed, by tests

	listing listing // /.well-known/core

	maxConns     int           // negative: none
	idleTimeout  time.Duration // negative: none
	frameTimeout time.Duration // negative: none
	tcp          tcpState
	tcpPool      sync.Pool // of *tcpBufs (tcp.go)

	obs          Observer
	peerIdentity func(net.Conn) string
	settle       time.Duration // transferSettle, but for tests (access.go)
	inflight     atomic.Int64  // transfers in flight (access.go)
	draining     atomic.Bool   // Shutdown began (drain.go)
	drainWake    chan struct{} // a transfer ended: Shutdown looks again
}

// New returns a Server for the files under dir.
func New(dir string, opts *Options) (*Server, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	s := &Server{root: root, log: slog.Default(), maxBERT: 64 << 10, maxBlock: 1024,
		files: make(map[string]*openFile), pending: make(map[string]*prep), versions: make(map[versionKey]*hashJob),
		done: make(chan struct{}), prepareWait: prepareWait, conns: make(map[io.Closer]struct{}),
		listing: listing{ttl: listingTTL, maxBytes: maxListing, maxScan: maxScan},
		obs:     nopObserver{}, settle: transferSettle, drainWake: make(chan struct{}, 1)}
	if opts != nil {
		if opts.Logger != nil {
			s.log = opts.Logger
		}
		if opts.Observer != nil {
			s.obs = opts.Observer
		}
		s.peerIdentity = opts.PeerIdentity
		if opts.MaxBERT > 0 {
			s.maxBERT = opts.MaxBERT &^ 1023
		}
		if err := opts.QBlock.Validate(); err != nil {
			root.Close()
			return nil, fmt.Errorf("fileserver: QBlock: %w", err)
		}
		s.non, s.noQBlock = opts.QBlock, opts.NoQBlock
		s.maxConns, s.idleTimeout, s.frameTimeout = opts.MaxConns, opts.IdleTimeout, opts.FrameTimeout
		if opts.MaxBlockSize != 0 {
			if _, err := coap.SZXFor(opts.MaxBlockSize); err != nil {
				root.Close()
				return nil, fmt.Errorf("fileserver: MaxBlockSize: %w", err)
			}
			s.maxBlock = opts.MaxBlockSize
		}
	}
	s.non = s.non.WithDefaults()
	s.maxConns = cmp.Or(s.maxConns, DefaultMaxConns)
	s.idleTimeout = cmp.Or(s.idleTimeout, DefaultIdleTimeout)
	s.frameTimeout = cmp.Or(s.frameTimeout, DefaultFrameTimeout)
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
	if !s.closed {
		close(s.done) // hashes stop, waits end
	}
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

// spawn runs f in a goroutine that Close waits for; false when the
// server is closed already.
func (s *Server) spawn(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
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
