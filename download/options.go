package download

import (
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/netsock"
)

// DefaultMaxSize bounds a body whose server announces no length (an HTTP
// chunked body, a CoAP server that sends no Size2): 512 MiB, more than
// firmware images need. Options.MaxSize changes it.
const DefaultMaxSize = 512 << 20

// ChangePolicy says what to do when the resource changed during a download.
type ChangePolicy int

const (
	// Fail ends the download with ErrResourceChanged (or ErrUnverified).
	Fail ChangePolicy = iota
	// Restart starts over from the first byte, discarding what was
	// written; the destination must be able to (a Truncate method, as
	// *os.File has), else it fails as Fail does. ToFile also discards
	// what a download of another URL left at the same path, which it
	// otherwise refuses to touch.
	Restart
)

// Options configure a download; nil or zero values are the defaults.
type Options struct {
	// BlockSize is the CoAP block size to ask for, 16..1024; default
	// 1024. A server may answer with smaller blocks: the download then
	// uses (and saves) the size the server uses.
	BlockSize int
	// Window, above 1, keeps that many CoAP block requests outstanding
	// over UDP and DTLS (coap, coaps), each with its own retransmissions,
	// instead of one at a time: on a 100 ms round trip a window of 10
	// moves a MiB about 10 times faster. RFC 7252 4.7 sets NSTART to 1
	// unless the client knows the server and the path can take more, so
	// it is off by default (0 or 1); a server that sends no Size2 is
	// asked in lockstep anyway. At most client.MaxWindow (64).
	Window int
	// QBlock asks with Q-Block2 (RFC 9177) over coap as well as coaps.
	// Over coaps (DTLS) it is the default, and QBlock changes nothing;
	// over coap (NoSec) it is off unless QBlock is set, as RFC 9177
	// section 11 does not recommend Q-Block in the NoSec security mode,
	// where an on-path node can rewrite the options to make the server
	// send every block again. With Q-Block2 the first block is asked for
	// in a confirmable exchange (RFC 9177 4.1 requires one to learn
	// whether the server does it); a server that does sends the rest in
	// bursts of Non-confirmable responses and the download asks only for
	// what is missing, which moves a MiB on a 100 ms round trip about 10
	// times faster than lockstep, and keeps that speed on lossy links.
	// Blocks after a gap are written at their offsets at once (and saved
	// in the state: a kill loses what was in flight), except into a
	// Stream, which gets them in order. A server that does not do
	// Q-Block2 answers 4.02 Bad Option, and the download goes on with
	// Block2 (lockstep or Window): one round trip more, once per attempt
	// (a resume asks again); one that ignores the option answers with
	// Block2 at once.
	QBlock bool
	// NoQBlock never asks with Q-Block2, over coaps either: every block
	// with Block2 (lockstep or Window), as before Q-Block2 was the
	// default. It cannot be set with QBlock.
	NoQBlock bool
	// QBlockParams are the Q-Block2 congestion control parameters (RFC
	// 9177 7.2); zero fields are the defaults. MaxPayloads should be the
	// server's.
	QBlockParams coap.NonParams
	// Params are the CoAP transmission parameters; default RFC 7252's.
	Params coap.Params
	// SHA256, when set, is the body's expected digest; a mismatch at the
	// end is ErrVerify.
	SHA256 []byte
	// Size, when positive, is the body's expected size: a server that
	// announces another ends the download with ErrVerify at once.
	Size int64
	// MaxSize bounds the body: a server that announces more, or sends
	// more, ends the download with ErrTooLarge. Zero means DefaultMaxSize,
	// negative no bound. A length the server announced is always enforced
	// exactly.
	MaxSize int64
	// Progress is called from the download's goroutine after every block
	// written and at every change of phase; it must not block. It may call
	// the download's methods (Suspend, say).
	Progress func(Progress)
	// Logger receives the download's events; nil means none.
	Logger *slog.Logger
	// NewSocket creates the raw socket for a network ("udp" or "tcp"; a
	// coaps+tcp download asks for "tcp" and adds TLS on top); nil means
	// sock.New. Any sock.Socket works: production, simnet, a user's own;
	// without Shutdown, Suspend reports sock.ErrNotSupported. Errors it
	// marks permanent (sock.Permanent) end the download.
	NewSocket func(network string) (sock.Socket, error)
	// TLS configures coaps+tcp and https downloads (trusted CAs, client
	// certificate); nil means the system's roots. ServerName defaults to
	// the URL's host. Each download keeps a session cache of its own, so a
	// reconnect resumes the TLS session.
	TLS *tls.Config
	// DTLS makes the sockets of coaps downloads, and is required for
	// them: a *dtlssock.Config with a pre-shared key (PSK, PSKIdentity)
	// or certificates (RootCAs, Certificates), or another DTLSLayer.
	// With dtlssock, suspending keeps the DTLS session; resuming restores
	// it with no handshake when the server uses Connection IDs, and
	// otherwise resumes it by session ID in an abbreviated handshake.
	DTLS DTLSLayer
	// OnChange is the policy when the resource changed, or cannot be
	// shown unchanged; default Fail.
	OnChange ChangePolicy
	// AllowUnverified accepts a resume that the server answers with no
	// ETag where it gave one before (libcoap's server does that). The
	// download then cannot know it is the same resource: only opt in when
	// something else (SHA256) will tell.
	AllowUnverified bool
	// RetryDelay is the first wait before reconnecting after a transient
	// failure; it doubles up to MaxRetryDelay. Defaults 1 s and 30 s. A
	// server's own wait (CoAP Max-Age on 5.03, HTTP Retry-After) takes
	// precedence. Resume and Reconnect cut a wait short.
	RetryDelay, MaxRetryDelay time.Duration
	// GiveUpAfter ends the download with ErrGaveUp after that long online
	// without a block: time spent suspended does not count, and it bounds
	// whatever is in flight (an exchange, a handshake, HTTP headers, a
	// stalled body), not only the waits between attempts. Zero means
	// never; a deadline on the context bounds the whole download.
	GiveUpAfter time.Duration
	// ConnectTimeout bounds each connect: resolving the host, the TCP
	// connect, the TLS or DTLS handshake, and for coap+tcp and coaps+tcp
	// the wait for the server's CSM (RFC 8323 5.3), which opens a CoAP
	// connection. A connect that takes longer fails the attempt with
	// ErrConnectTimeout, which is transient: the download tries again
	// after the usual wait, and only GiveUpAfter or the context end it.
	// Zero means sock.DefaultConnectTimeout (10 s); negative is an error.
	// It bounds a connect even under a context with a later deadline.
	ConnectTimeout time.Duration
	// FollowRedirects is how many HTTP redirects in a row (301, 302, 303,
	// 307, 308) an http or https download follows; zero follows none, and
	// a redirect ends the download with an *HTTPError whose Location says
	// where it points. A redirect from https to anything but https, or to
	// a scheme other than http and https, is refused (ErrRedirectRefused);
	// more than FollowRedirects in a row end it with ErrTooManyRedirects.
	// Every attempt starts again from the URL given and follows the
	// redirects anew, sending the Range and If-Range of a resume along, so
	// a redirect that expired (a signed URL) is asked for again, and a
	// resume continues only where the final server proves, by the
	// validator the first response gave (its strong ETag or
	// Last-Modified), that it holds the same version; one that does not is
	// ErrResourceChanged. Stickiness (Options.NewSocket's preferred
	// endpoint) is kept per host within a run; only the URL's own host's
	// is saved in the state.
	FollowRedirects int
	// Resume, when set, continues a download from a saved state instead of
	// from the first byte; ToFile sets it from NAME.part.state. The
	// destination must hold the bytes the state says were written.
	Resume *State

	// Controller bookkeeping, set by Controller.Start and ToFile.
	startSuspended bool
	onEnd          func(*Download)
}

// normalize fills in the defaults and checks everything that can be
// checked before any traffic: a usage error here is ErrOptions.
func (o *Options) normalize(t *target) error {
	if o.BlockSize == 0 {
		o.BlockSize = 1024
	}
	if _, err := coap.SZXFor(o.BlockSize); err != nil {
		return fmt.Errorf("%w: %w", ErrOptions, err)
	}
	if err := o.checkQBlock(); err != nil {
		return err
	}
	if o.Window < 0 || o.Window > client.MaxWindow {
		return fmt.Errorf("%w: window %d: want 0..%d", ErrOptions, o.Window, client.MaxWindow)
	}
	if o.Params != (coap.Params{}) {
		if err := o.Params.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrOptions, err)
		}
	}
	if o.SHA256 != nil && len(o.SHA256) != sha256.Size {
		return fmt.Errorf("%w: SHA-256 of %d bytes, want %d", ErrOptions, len(o.SHA256), sha256.Size)
	}
	if o.Size < 0 {
		return fmt.Errorf("%w: negative size %d", ErrOptions, o.Size)
	}
	if o.MaxSize == 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.MaxSize > 0 && o.Size > o.MaxSize {
		return fmt.Errorf("%w: expected size %d is over the limit of %d", ErrOptions, o.Size, o.MaxSize)
	}
	if t.scheme.name == "coaps" && o.DTLS == nil {
		return fmt.Errorf("%w: coaps:// needs DTLS, and Options.DTLS is nil: give it a *dtlssock.Config with a pre-shared key or certificates (package download links no DTLS of its own)", ErrOptions)
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = time.Second
	}
	if o.MaxRetryDelay < o.RetryDelay {
		o.MaxRetryDelay = max(30*time.Second, o.RetryDelay)
	}
	if o.GiveUpAfter < 0 {
		return fmt.Errorf("%w: negative GiveUpAfter %v", ErrOptions, o.GiveUpAfter)
	}
	if o.FollowRedirects < 0 {
		return fmt.Errorf("%w: negative FollowRedirects %d", ErrOptions, o.FollowRedirects)
	}
	if o.ConnectTimeout < 0 {
		return fmt.Errorf("%w: negative ConnectTimeout %v", ErrOptions, o.ConnectTimeout)
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = sock.DefaultConnectTimeout
	}
	if o.NewSocket == nil {
		o.NewSocket = func(network string) (sock.Socket, error) { return netsock.New(network, nil) }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if t.scheme.secure && t.scheme.transport == TCP {
		// One session cache per download: every reconnect over TLS
		// (coaps+tcp, https) resumes the session, not a full handshake.
		cfg := &tls.Config{}
		if o.TLS != nil {
			cfg = o.TLS.Clone()
		}
		if cfg.ClientSessionCache == nil {
			// The URL's server and, over HTTPS, those it redirects to.
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(min(1+o.FollowRedirects, 4))
		}
		o.TLS = cfg
	}
	return nil
}

// tooLarge reports whether n bytes are over the size bound.
func (o *Options) tooLarge(n int64) bool { return o.MaxSize > 0 && n > o.MaxSize }

// checkQBlock checks the Q-Block2 options: its parameters, and not both
// QBlock and NoQBlock.
func (o *Options) checkQBlock() error {
	if o.QBlock && o.NoQBlock {
		return fmt.Errorf("%w: QBlock and NoQBlock together: QBlock asks with Q-Block2 over coap too, NoQBlock never does", ErrOptions)
	}
	if err := o.QBlockParams.Validate(); err != nil {
		return fmt.Errorf("%w: QBlockParams: %w", ErrOptions, err)
	}
	return nil
}

// qblock reports whether a download of scheme asks with Q-Block2: over
// coaps unless NoQBlock, over coap only with QBlock (RFC 9177 section 11:
// not in the NoSec security mode, unless asked). Over TCP the client
// ignores it.
func (o *Options) qblock(scheme string) bool {
	switch {
	case o.NoQBlock:
		return false
	case o.QBlock:
		return true
	}
	return scheme == "coaps"
}
