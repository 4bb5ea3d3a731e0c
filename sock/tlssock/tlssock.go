// Package tlssock is a TLS layer for tether's socket contract: it decorates
// any stream sock.Socket (a netsock or simnet socket, a modem's) and is
// itself a sock.Socket, so everything above runs over TLS unchanged
// (coaps+tcp).
//
// # Offline-safe shutdown
//
// Shutdown shuts only the raw socket down and sends no close_notify: the
// server keeps the session, and the next Connect resumes it from a session
// ticket (an abbreviated handshake; SessionResumed reports it). Close sends
// close_notify, as a finished conversation should.
//
// The TLS socket is a layer (see sock.As): Bind, Shutdown, the association,
// the byte counters and stickiness are the raw socket's, passed on through
// Unwrap, so it has them exactly when the raw socket does. Shutdown is the
// raw socket's own: the TLS socket sees its raw socket shut down and stops
// using the session.
//
// # Usage
//
//	raw, _ := netsock.New("tcp", nil)
//	s := tlssock.New(raw, &tls.Config{RootCAs: pool})
//	err := s.Connect(ctx, "coap.example", "5684") // ServerName defaults to the host
//
// A handshake that fails on credentials (the server's alert about them, a
// certificate that does not verify) matches sock.ErrAuth, which is
// permanent (sock.IsPermanent); a timeout, a broken connection, another
// alert or a peer that does not speak TLS stays transient. Under TLS 1.3 a
// refused client certificate surfaces at the first Receive, classified the
// same.
//
// A TLS socket offers no OS handle (sock.As finds no sock.SyscallConner):
// the raw socket's readiness would signal records, not data;
// HasBufferedData tells an event loop what TLS holds.
//
// tlssock depends on packages sock and sockkit (and sock's internal
// seclayer) and crypto/tls only.
package tlssock

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sync"
	"time"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/internal/seclayer"
	"github.com/tether-iot/tether/sock/sockkit"
)

// Socket is a TLS client socket over a raw stream socket.
type Socket struct {
	raw sock.Socket
	cfg *tls.Config

	st      seclayer.State[*tls.Conn] // its Mu guards the fields below too
	resumed bool
	pending []byte // decrypted, not yet returned by Receive

	rbuf []byte // the receiver's record buffer
}

var (
	_ sock.Socket               = (*Socket)(nil)
	_ sock.BufferedDataReporter = (*Socket)(nil)
	_ sock.SessionResumer       = (*Socket)(nil)
)

// New returns a closed TLS socket over raw, a stream socket. cfg is cloned;
// a nil ClientSessionCache gets one, so reconnects resume sessions.
func New(raw sock.Socket, cfg *tls.Config) *Socket {
	if cfg == nil {
		cfg = &tls.Config{}
	}
	c := cfg.Clone()
	if c.ClientSessionCache == nil {
		c.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	}
	return &Socket{raw: raw, cfg: c, rbuf: make([]byte, 16<<10+256),
		st: seclayer.State[*tls.Conn]{Timeout: sock.DefaultReceiveTimeout}}
}

// Unwrap returns the raw socket, whose capabilities the TLS socket passes on
// (see sock.As).
func (s *Socket) Unwrap() sock.Socket { return s.raw }

// Connect implements sock.Socket: the raw socket connects (a shut-down one
// is re-created), then the TLS handshake runs, bounded by ctx (or
// sock.DefaultConnectTimeout). ServerName defaults to host. A failed
// handshake closes the raw socket; certificate errors come back as
// crypto/tls reports them, never as a silent fall-back.
func (s *Socket) Connect(ctx context.Context, host, port string) error {
	s.st.Mu.Lock()
	s.st.Conn, s.pending, s.resumed = nil, nil, false // the old session, if any, is abandoned quietly
	s.st.Mu.Unlock()
	if err := s.raw.Connect(ctx, host, port); err != nil {
		return err
	}
	cfg := s.cfg
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(sock.DefaultConnectTimeout)
	}
	nc := &rawConn{s: s.raw, deadline: deadline}
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		s.raw.Close()
		return s.opError("connect", sockkit.UnresolvedAddr{Net: "tcp", Host: host, Port: port}, handshakeError(err))
	}
	nc.setDeadline(time.Time{})
	s.st.Mu.Lock()
	s.st.Conn, s.resumed = tc, tc.ConnectionState().DidResume
	s.st.Mu.Unlock()
	return nil
}

// handshakeError classifies a failed handshake where it happened: refused
// credentials (the server's alert about them, a certificate that does not
// verify) match sock.ErrAuth; a timeout, a broken connection, another
// alert, or a peer that does not speak TLS (a captive portal answering in
// HTTP, say) stay transient.
func handshakeError(err error) error {
	var (
		cve *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		he  x509.HostnameError
		ci  x509.CertificateInvalidError
		rh  tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &cve), errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ci):
		return sockkit.Mark(sock.ErrAuth, err)
	case errors.As(err, &rh):
		return fmt.Errorf("the peer does not speak TLS: %w", err)
	}
	return receivedAlert(err)
}

// credentialAlerts are the alerts (RFC 8446 6.2) by which a peer refuses
// our credentials or the security we offer: retrying the same ones fails
// the same way.
var credentialAlerts = map[uint64]bool{
	40:  true, // handshake_failure
	42:  true, // bad_certificate
	43:  true, // unsupported_certificate
	44:  true, // certificate_revoked
	45:  true, // certificate_expired
	46:  true, // certificate_unknown
	48:  true, // unknown_ca
	49:  true, // access_denied
	51:  true, // decrypt_error
	70:  true, // protocol_version
	71:  true, // insufficient_security
	115: true, // unknown_psk_identity
	116: true, // certificate_required
}

// receivedAlert marks the peer's fatal alert about our credentials as
// sock.ErrAuth, during the handshake or after it: under TLS 1.3 a server
// that refuses the client's certificate says so only after the client's
// side of the handshake is over, with the first read. crypto/tls reports a
// received alert as a *net.OpError "remote error" around its unexported
// alert type, a uint8.
func receivedAlert(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" {
		if v := reflect.ValueOf(oe.Err); v.Kind() == reflect.Uint8 && credentialAlerts[v.Uint()] {
			return sockkit.Mark(sock.ErrAuth, err)
		}
	}
	return err
}

// Send implements sock.Socket.
func (s *Socket) Send(b []byte) error {
	c, err := s.st.Current(s.raw)
	if err == nil {
		_, err = c.Write(b)
	}
	if err != nil {
		return s.opError("send", nil, s.explain(err))
	}
	return nil
}

// Receive implements sock.Socket. A TLS record may hold more than b: the
// rest is kept for the next call, and HasBufferedData reports it. The
// peer's close_notify (or orderly close) reads as (0, nil).
func (s *Socket) Receive(b []byte) (int, error) {
	online := s.raw.State() == sock.StateConnected
	s.st.Mu.Lock()
	if len(s.pending) > 0 && online {
		n := copy(b, s.pending)
		s.pending = s.pending[n:]
		s.st.Mu.Unlock()
		return n, nil
	}
	timeout := s.st.Timeout
	s.st.Mu.Unlock()
	c, err := s.st.Current(s.raw)
	if err != nil {
		return 0, s.opError("receive", nil, err)
	}
	s.raw.SetReceiveTimeout(timeout)
	n, err := c.Read(s.rbuf)
	if err == io.EOF {
		// The peer's close_notify or orderly close reads as 0 bytes,
		// unless our own Shutdown or Close ended the stream.
		s.st.Mu.Lock()
		ours := s.st.Conn != c
		s.st.Mu.Unlock()
		if ours || s.isShut() {
			return 0, s.opError("receive", nil, s.explain(net.ErrClosed))
		}
		return 0, nil
	}
	if err != nil {
		return 0, s.opError("receive", nil, s.explain(receivedAlert(err)))
	}
	k := copy(b, s.rbuf[:n])
	if k < n {
		s.st.Mu.Lock()
		s.pending = append(s.pending[:0], s.rbuf[k:n]...)
		s.st.Mu.Unlock()
	}
	return k, nil
}

func (s *Socket) isShut() bool { return s.raw.State() == sock.StateShutdown }

// explain reports a shutdown or close that raced an I/O as such.
func (s *Socket) explain(err error) error {
	switch {
	case s.isShut():
		return sock.ErrShutdown
	case s.raw.State() == sock.StateClosed:
		return net.ErrClosed
	}
	return err
}

// Close implements sock.Socket: close_notify if a session is up, then the
// raw socket is closed.
func (s *Socket) Close() error {
	online := s.raw.State() == sock.StateConnected
	s.st.Mu.Lock()
	c := s.st.Conn
	s.st.Conn, s.pending = nil, nil
	s.st.Mu.Unlock()
	if c != nil && online {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Close() // sends close_notify, closes the raw socket
	}
	return s.raw.Close()
}

// State implements sock.Socket: the raw socket's state.
func (s *Socket) State() sock.State { return s.raw.State() }

// ReceiveTimeout implements sock.Socket.
func (s *Socket) ReceiveTimeout() time.Duration { return s.st.ReceiveTimeout() }

// SetReceiveTimeout implements sock.Socket.
func (s *Socket) SetReceiveTimeout(d time.Duration) { s.st.SetReceiveTimeout(d) }

// InnerMTU implements sock.Socket: a stream has none.
func (s *Socket) InnerMTU() (int, error) { return 0, sock.ErrNotSupported }

// SessionResumed implements sock.SessionResumer.
func (s *Socket) SessionResumed() bool {
	s.st.Mu.Lock()
	defer s.st.Mu.Unlock()
	return s.resumed
}

// HasBufferedData implements sock.BufferedDataReporter: decrypted bytes
// that the raw socket will not signal as readable.
func (s *Socket) HasBufferedData() bool {
	online := s.raw.State() == sock.StateConnected
	s.st.Mu.Lock()
	defer s.st.Mu.Unlock()
	return online && len(s.pending) > 0
}

func (s *Socket) opError(op string, addr net.Addr, err error) error {
	return seclayer.OpError("tls", op, addr, err)
}

// rawConn adapts a sock.Socket to the net.Conn that crypto/tls drives. Its
// read deadline bounds the handshake; afterwards the Socket's receive
// timeout does.
type rawConn struct {
	s        sock.Socket
	mu       sync.Mutex
	deadline time.Time
}

func (c *rawConn) setDeadline(t time.Time) {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
}

func (c *rawConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	d := c.deadline
	c.mu.Unlock()
	if !d.IsZero() {
		left := time.Until(d)
		if left <= 0 {
			return 0, &net.OpError{Op: "read", Net: "tcp", Err: sock.ErrTimeout}
		}
		c.s.SetReceiveTimeout(left)
	}
	n, err := c.s.Receive(b)
	if n == 0 && err == nil {
		return 0, io.EOF
	}
	return n, err
}

func (c *rawConn) Write(b []byte) (int, error) {
	if err := c.s.Send(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (c *rawConn) Close() error { return c.s.Close() }

func (c *rawConn) LocalAddr() net.Addr {
	a := sock.AssociationOf(c.s)
	h, _ := a.LocalHost()
	p, _ := a.LocalPort()
	return sockkit.UnresolvedAddr{Net: "tcp", Host: h, Port: p}
}

func (c *rawConn) RemoteAddr() net.Addr {
	a := sock.AssociationOf(c.s)
	h, _ := a.RemoteHost()
	p, _ := a.RemotePort()
	return sockkit.UnresolvedAddr{Net: "tcp", Host: h, Port: p}
}

func (c *rawConn) SetDeadline(t time.Time) error     { c.setDeadline(t); return nil }
func (c *rawConn) SetReadDeadline(t time.Time) error { c.setDeadline(t); return nil }

// SetWriteDeadline is accepted and ignored: a Send does not wait for the
// peer.
func (c *rawConn) SetWriteDeadline(time.Time) error { return nil }
