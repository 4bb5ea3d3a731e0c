// Package download runs resumable CoAP downloads: a download survives
// suspend and resume, changes of the device's IP address, packet loss and
// outages of any length, and process restarts, and it never mixes two
// versions of a resource: every resume is verified by the resource's ETag.
// It is the "offline mode" of the Anjay LwM2M SDK, over tether's socket
// layer.
//
// # Usage
//
//	d, err := download.Start(ctx, "coap://fw.example/image.bin", sink, &download.Options{
//		Progress: func(p download.Progress) { ... },
//	})
//	...
//	d.Suspend() // the device goes offline: the socket is shut down, not closed
//	d.Resume()  // back online: same server, from the first missing block
//	err = d.Wait()
//
// ToFile writes to NAME.part, keeps the state needed to resume in
// NAME.part.state, and renames to NAME only once the download is complete and
// verified; run it again after a crash and it continues where it stopped.
// A Controller owns many downloads and suspends or resumes them all, per
// transport, when the device goes offline or comes back.
//
// # What a resume does
//
// Suspend cancels the exchange in flight and shuts the socket down (see
// sock.Shutdown), so it remembers the server's hostname, port and address.
// Resume binds to the previous local port when it can, reconnects to the
// remembered hostname, preferring the address used before (see
// sock.PreferredEndpoint), and asks for the block at the number of bytes
// already written. If the first block then carries another ETag, or none
// where there was one, the download ends with ErrResourceChanged (or starts
// over, with OnChange: Restart).
//
// download depends on packages coap and sock; it must never import the
// command.
package download

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pion/dtls/v3"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/sock"
)

// Errors of a download.
var (
	// ErrResourceChanged reports that the resource is not the one the
	// download started on: its ETag differs after a resume, or the server
	// sent an ETag before and none after. The bytes written so far belong to
	// the old version; nothing of the new one was written.
	ErrResourceChanged = errors.New("download: the resource changed")
	// ErrVerify reports a complete body whose size or SHA-256 is not the
	// one expected.
	ErrVerify = errors.New("download: verification failed")
	// ErrBadURL reports a URL tether cannot download.
	ErrBadURL = errors.New("download: unsupported URL")
	// ErrDone reports a Suspend or Resume of a download that has ended.
	ErrDone = errors.New("download: already ended")
	// ErrGaveUp reports a download that made no progress for
	// Options.GiveUpAfter.
	ErrGaveUp = errors.New("download: no progress, gave up")
)

// Transport is the transport a download runs over, the unit of offline mode.
type Transport string

// Transports.
const (
	UDP Transport = "udp"
	TCP Transport = "tcp"
	// TLS is CoAP over TLS (coaps+tcp://), on a raw TCP socket.
	TLS Transport = "tls"
	// DTLS is CoAP over DTLS (coaps://), on a raw UDP socket.
	DTLS Transport = "dtls"
)

// ChangePolicy says what to do when the resource changed during a download.
type ChangePolicy int

const (
	// Fail ends the download with ErrResourceChanged.
	Fail ChangePolicy = iota
	// Restart starts over from the first byte, discarding what was written.
	Restart
)

// Options configure a download; nil or zero values are the defaults.
type Options struct {
	// BlockSize is the block size to ask for, 16..1024; default 1024.
	BlockSize int
	// Params are the CoAP transmission parameters; default RFC 7252's.
	Params coap.Params
	// SHA256, when set, is the body's expected digest; a mismatch at the
	// end is ErrVerify.
	SHA256 []byte
	// Size, when positive, is the body's expected size.
	Size int64
	// Progress is called after every block written, from the download's
	// goroutine; it must not block.
	Progress func(Progress)
	// Logger receives the download's events; nil means none.
	Logger *slog.Logger
	// NewSocket creates the raw socket for a network ("udp" or "tcp"; a
	// coaps+tcp download asks for "tcp" and adds TLS on top); nil means
	// sock.New. Any sock.Socket works: production, simnet, a user's own;
	// without Shutdown, Suspend reports sock.ErrNotSupported.
	NewSocket func(network string) (sock.Socket, error)
	// TLS configures coaps+tcp downloads (trusted CAs, client
	// certificate); nil means the system's roots. ServerName defaults to
	// the URL's host.
	TLS *tls.Config
	// DTLS configures coaps downloads: a pre-shared key (PSK,
	// PSKIdentityHint) or certificates (RootCAs, Certificates).
	// Suspending keeps the DTLS session; resuming restores it with no
	// handshake when the server uses Connection IDs, and otherwise resumes
	// it by session ID in an abbreviated handshake (see sock/dtlssock).
	DTLS *dtls.Config
	// OnChange is the policy when the resource changed; default Fail.
	OnChange ChangePolicy
	// AllowUnverified accepts a resume that the server answers with no
	// ETag where it gave one before (libcoap's server does that). The
	// download then cannot know it is the same resource: only opt in when
	// something else (SHA256) will tell.
	AllowUnverified bool
	// RetryDelay is the first wait before reconnecting after the server
	// stopped answering; it doubles up to MaxRetryDelay. Defaults 1 s and
	// 30 s.
	RetryDelay, MaxRetryDelay time.Duration
	// GiveUpAfter ends the download with ErrGaveUp after that long without
	// a block; zero means never (the context still ends it).
	GiveUpAfter time.Duration
	// Resume, when set, continues a download from a saved state instead of
	// from the first byte; ToFile sets it from NAME.part.state.
	Resume *State

	// Controller bookkeeping, set by Controller.Start.
	startSuspended bool
	onEnd          func(*Download)
}

// Progress is a snapshot of a download.
type Progress struct {
	Written   int64         // bytes written, from the start of the body
	Total     int64         // the body's size, -1 while unknown
	Rate      float64       // bytes per second over the last seconds
	Retries   int           // failed exchanges retried on a new connection (Resume is not counted)
	Refetched int64         // bytes received twice (blocks re-requested)
	Offline   time.Duration // time spent suspended
	Blocks    int           // blocks received
}

// Download is one running download. Its methods are safe for concurrent use.
type Download struct {
	url       *url.URL
	transport Transport
	host      string
	port      string
	path      string
	dst       io.WriterAt
	opts      Options
	log       *slog.Logger

	mu        sync.Mutex
	suspended bool
	wake      chan struct{} // closed by Resume (and Close) to wake the loop
	cancelEx  context.CancelFunc
	s         sock.Socket
	localPort string
	pref      sock.PreferredEndpoint
	etag      []byte
	lastMod   string // HTTP's Last-Modified, when there is no strong ETag
	written   int64
	hash      hash.Hash
	prog      Progress
	rate      rateMeter
	offSince  time.Time

	done chan struct{}
	err  error
}

// Start begins downloading rawURL (coap://, coaps://, coap+tcp://,
// coaps+tcp://, http:// or https://) into dst, in a
// goroutine of its own, and returns at once. ctx bounds the whole download.
func Start(ctx context.Context, rawURL string, dst io.WriterAt, opts *Options) (*Download, error) {
	d, err := newDownload(rawURL, dst, opts)
	if err != nil {
		return nil, err
	}
	go d.run(ctx)
	return d, nil
}

func newDownload(rawURL string, dst io.WriterAt, opts *Options) (*Download, error) {
	u, transport, host, port, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	d := &Download{url: u, transport: transport, host: host, port: port, path: u.Path, dst: dst,
		wake: make(chan struct{}), done: make(chan struct{}), hash: sha256.New()}
	if opts != nil {
		d.opts = *opts
	}
	o := &d.opts
	if o.BlockSize == 0 {
		o.BlockSize = 1024
	}
	if _, err := coap.SZXFor(o.BlockSize); err != nil {
		return nil, err
	}
	if o.Params != (coap.Params{}) {
		if err := o.Params.Validate(); err != nil {
			return nil, err
		}
	}
	if o.SHA256 != nil && len(o.SHA256) != sha256.Size {
		return nil, fmt.Errorf("download: SHA-256 of %d bytes, want %d", len(o.SHA256), sha256.Size)
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = time.Second
	}
	if o.MaxRetryDelay < o.RetryDelay {
		o.MaxRetryDelay = max(30*time.Second, o.RetryDelay)
	}
	if o.NewSocket == nil {
		o.NewSocket = func(network string) (sock.Socket, error) { return sock.New(network, nil) }
	}
	d.log = o.Logger
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.log = d.log.With("url", rawURL)
	d.prog.Total = -1
	if o.Size > 0 {
		d.prog.Total = o.Size
	}
	if st := o.Resume; st != nil {
		if err := d.restore(st); err != nil {
			return nil, err
		}
	}
	d.suspended = o.startSuspended
	if d.suspended {
		d.offSince = time.Now()
	}
	return d, nil
}

// parseURL splits a coap:// or coap+tcp:// URL.
func parseURL(raw string) (u *url.URL, t Transport, host, port string, err error) {
	u, err = url.Parse(raw)
	if err != nil {
		return nil, "", "", "", fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	switch u.Scheme {
	case "coap":
		t = UDP
	case "coap+tcp":
		t = TCP
	case "coaps+tcp":
		t = TLS
	case "coaps":
		t = DTLS
	case "http":
		t = HTTP
	case "https":
		t = HTTPS
	default:
		return nil, "", "", "", fmt.Errorf("%w: scheme %q (want coap, coaps, coap+tcp, coaps+tcp, http or https)", ErrBadURL, u.Scheme)
	}
	host, port = u.Hostname(), u.Port()
	if port == "" {
		port = "5683"
		switch t {
		case TLS, DTLS:
			port = "5684"
		case HTTP:
			port = "80"
		case HTTPS:
			port = "443"
		}
	}
	if err := sock.CheckHost(host); err != nil {
		return nil, "", "", "", fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	if _, err := sock.ParsePort(port, false); err != nil {
		return nil, "", "", "", fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	query := u.RawQuery != "" && t != HTTP && t != HTTPS
	if u.User != nil || query || u.Fragment != "" || strings.Trim(u.Path, "/") == "" {
		return nil, "", "", "", fmt.Errorf("%w: %q needs a path, and no user, query or fragment", ErrBadURL, raw)
	}
	return u, t, host, port, nil
}

// Transport returns the transport the download runs over.
func (d *Download) Transport() Transport { return d.transport }

// URL returns the URL being downloaded.
func (d *Download) URL() string { return d.url.String() }

// Done is closed when the download has ended; Err then says how.
func (d *Download) Done() <-chan struct{} { return d.done }

// Wait waits for the download to end and returns its error, nil when the
// body is complete and verified.
func (d *Download) Wait() error {
	<-d.done
	return d.err
}

// Err returns the download's error once it has ended, nil before.
func (d *Download) Err() error {
	select {
	case <-d.done:
		return d.err
	default:
		return nil
	}
}

// Progress returns a snapshot of the download.
func (d *Download) Progress() Progress {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.progressLocked()
}

func (d *Download) progressLocked() Progress {
	p := d.prog
	p.Written = d.written
	p.Rate = d.rate.rate(time.Now())
	if d.suspended {
		p.Offline += time.Since(d.offSince)
	}
	return p
}

// Suspend pauses the download: the exchange in flight is abandoned (blocks
// already written stay written) and the socket is shut down, keeping its
// association. A socket without Shutdown cannot be suspended:
// sock.ErrNotSupported, and the download goes on.
func (d *Download) Suspend() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	select {
	case <-d.done:
		return ErrDone
	default:
	}
	if d.suspended {
		return nil
	}
	if d.s != nil {
		if _, ok := d.s.(sock.Shutdowner); !ok {
			return fmt.Errorf("download: suspend: %w", sock.ErrNotSupported)
		}
	}
	d.suspended = true
	d.offSince = time.Now()
	d.wake = make(chan struct{})
	if d.cancelEx != nil {
		d.cancelEx()
	}
	if d.s != nil {
		if err := sock.Shutdown(d.s); err != nil && !errors.Is(err, net.ErrClosed) {
			d.log.Debug("download: shutdown", "err", err)
		}
	}
	d.log.Info("download suspended", "written", d.written)
	return nil
}

// Resume continues a suspended download: it reconnects to the same
// hostname and port and asks for the first block not yet written.
func (d *Download) Resume() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	select {
	case <-d.done:
		return ErrDone
	default:
	}
	if !d.suspended {
		return nil
	}
	d.suspended = false
	d.prog.Offline += time.Since(d.offSince)
	close(d.wake)
	d.log.Info("download resumed", "written", d.written)
	return nil
}

// IsSuspended reports whether the download is suspended.
func (d *Download) IsSuspended() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.suspended
}

// Reconnect drops the connection at once and reconnects, as after an IP
// change, without waiting for a timeout to notice.
func (d *Download) Reconnect() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cancelEx != nil {
		d.cancelEx()
	}
}

// State returns what a new process needs to continue the download.
func (d *Download) State() (*State, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stateLocked()
}

func (d *Download) stateLocked() (*State, error) {
	hs, err := d.hash.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &State{
		Version:   stateVersion,
		URL:       d.url.String(),
		ETag:      append([]byte(nil), d.etag...),
		LastMod:   d.lastMod,
		Written:   d.written,
		BlockSize: d.opts.BlockSize,
		Total:     d.prog.Total,
		Preferred: d.pref.String(),
		Hash:      hs,
	}, nil
}

// finish records the end of the download.
func (d *Download) finish(err error) {
	d.mu.Lock()
	d.err = err
	if d.s != nil {
		d.s.Close()
		d.s = nil
	}
	close(d.done)
	onEnd := d.opts.onEnd
	d.mu.Unlock()
	if onEnd != nil {
		onEnd(d)
	}
	if err != nil {
		d.log.Info("download ended", "err", err)
	} else {
		d.log.Info("download complete")
	}
}
