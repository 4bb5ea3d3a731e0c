// Package dtlssock is a DTLS 1.2 layer (github.com/pion/dtls/v3) for
// tether's socket contract: it decorates any datagram sock.Socket and is
// itself a sock.Socket, so CoAP runs over it unchanged (coaps://).
//
// A Config (pre-shared key and identity, certificates, trusted roots,
// cipher suites, Connection IDs) configures both sides; it is tether's
// own, turned into pion's options inside: pion's API is no part of
// tether's, so a new major version of pion need not change tether's.
//
// # Offline-safe shutdown
//
// Shutdown shuts only the raw socket down and sends no close_notify, and
// keeps the connection's state. The next Connect restores that state on the
// new raw socket with no handshake at all when the server can tell it is
// the same client: the session uses a Connection ID (RFC 9146, which this
// client always offers), so the server accepts it from a new address and
// port, or the raw socket came back on the same address and port. Otherwise
// (a server without Connection IDs, libcoap's OpenSSL build for one) the
// Connect runs an abbreviated handshake that resumes the session by its ID
// (RFC 5246 section 7.3), which costs no certificate and no key exchange,
// or a full one if the server forgot it. If a restored state gets no answer
// (the server forgot the session), the Connect after that runs a handshake.
// SessionResumed reports whether the last Connect avoided a full handshake,
// StateRestored whether it needed none at all. Close sends close_notify and
// forgets the session.
//
// The DTLS socket is a layer (see sock.As): Bind, the association, the byte
// counters and stickiness are the raw socket's, passed on through Unwrap,
// so it has them exactly when the raw socket does. Shutdown is its own, as
// it keeps the session: over a raw socket that cannot shut down, it stops
// the session's traffic and leaves the raw socket idle until the next
// Connect or Close. It offers no OS handle: the raw socket's readiness
// would signal records, not data.
//
// # Failed handshakes
//
// Connect says why a handshake failed. Refused credentials match
// sock.ErrAuth and are permanent (sock.IsPermanent): the server's fatal
// alert, a certificate that does not verify, and a pre-shared key the
// server never accepts, which DTLS servers signal by silence (see
// refusal.go: the server sends its hello flight again after each of our
// Finished; that verdict is ErrAuth but not permanent on its own, as an
// uplink outage can fake it). No answer at all is a transient timeout
// whose text says so ("no DTLS answer").
//
// # Servers
//
// Listen is the server side over any net.PacketConn (a UDP socket, a
// simulated network's), routing by address and Connection ID; `tether
// serve --dtls` uses it. pion's own listener needs a *net.UDPConn, and it
// drops application records that overtake the end of its handshake.
//
// A server faces sources that prove nothing: Config.Limits bounds what
// Listen holds for them (handshakes in progress, in all and per address,
// where a new ClientHello displaces the oldest whose source has not
// returned its cookie; the records held before a handshake completes) and
// for established sessions (an idle one leaves memory and is resumed by
// session ID from a compact store; the live ones are bounded in number).
// See Limits.
//
// dtlssock depends on packages sock and sockkit (and sock's internal
// seclayer) and pion (dtls, transport) only.
package dtlssock

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/internal/seclayer"
	"github.com/tether-iot/tether/sock/sockkit"
)

// recordOverhead is what a DTLS 1.2 record adds to a payload at most with
// the AEAD suites pion offers: a 13-byte header, an 8-byte explicit nonce,
// a 16-byte tag.
const recordOverhead = 13 + 8 + 16

// Socket is a DTLS client socket over a raw datagram socket.
type Socket struct {
	raw sock.Socket
	cfg Config

	st        seclayer.State[*dtls.Conn] // its Mu guards the fields below too
	pc        *packetConn                // st.Conn's adapter
	saved     *kept                      // what Shutdown kept for the next Connect
	sessions  *sessionStore              // for resumption by session ID
	restored  bool                       // the last Connect restored saved, with no handshake
	resumed   bool                       // the last Connect ran no full handshake
	unproven  bool                       // restored, and nothing received since
	announce  bool                       // restored, and nothing sent since: see Send
	handshake int                        // full handshakes run

	rbuf [16384 + 256]byte // the receiver's record buffer
}

var (
	_ sock.Socket         = (*Socket)(nil)
	_ sock.Shutdowner     = (*Socket)(nil)
	_ sock.SessionResumer = (*Socket)(nil)
)

// New returns a closed DTLS socket over raw, a datagram socket. cfg is
// copied (nil is an empty Config, whose handshakes fail). The client
// offers Connection IDs, and keeps the sessions of its full handshakes in
// memory, so that a later handshake can resume one by ID.
func New(raw sock.Socket, cfg *Config) *Socket {
	s := &Socket{raw: raw, sessions: &sessionStore{},
		st: seclayer.State[*dtls.Conn]{Timeout: sock.DefaultReceiveTimeout}}
	if cfg != nil {
		s.cfg = *cfg
	}
	return s
}

// Connect implements sock.Socket: the raw socket connects (a shut-down one
// is re-created, on a new port), then the state kept by Shutdown is
// restored or a handshake runs (see the package doc), bounded by ctx (or
// sock.DefaultConnectTimeout). ServerName defaults to host.
func (s *Socket) Connect(ctx context.Context, host, port string) error {
	s.st.Mu.Lock()
	old, oldPC, saved := s.st.Conn, s.pc, s.saved
	if s.unproven {
		saved = nil // the last restored state never answered
	}
	s.st.Conn, s.pc, s.saved, s.resumed, s.restored, s.unproven, s.announce = nil, nil, nil, false, false, false, false
	s.st.Mu.Unlock()
	if old != nil {
		quiet(old, oldPC)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, sock.DefaultConnectTimeout)
		defer cancel()
	}
	if err := s.raw.Connect(ctx, host, port); err != nil {
		return err
	}
	if saved != nil && !saved.restorable(localAddr(s.raw)) {
		saved = nil
	}
	remote := remoteAddr(s.raw, host, port)
	pc := &packetConn{s: s.raw, remote: remote}
	name := s.cfg.ServerName
	if name == "" {
		// An IP literal too: the certificate is then checked against its IP
		// addresses (pion sends no SNI for an IP, as RFC 6066 asks).
		name = host
	}
	addr := sockkit.UnresolvedAddr{Net: "udp", Host: host, Port: port}
	var (
		c           *dtls.Conn
		err         error
		abbreviated bool
	)
	if saved != nil {
		pc.cid.Store(saved.cid) // the same session, whether or not it writes again
		c, err = dtls.ResumeWithOptions(saved.state, pc, remote, s.cfg.clientOptions(name, s.sessions)...)
		if err != nil {
			s.raw.Close()
			return s.opError("connect", addr, err)
		}
	} else {
		offer := &offered{SessionStore: s.sessions}
		hctx, abort := context.WithCancelCause(ctx)
		watch := &handshakeWatch{abort: abort}
		pc.watch.Store(watch)
		c, err = dtls.ClientWithOptions(pc, remote, clientSide(s.cfg.clientOptions(name, offer))...)
		if err == nil {
			err = c.HandshakeContext(hctx)
		}
		pc.watch.Store(nil)
		cause := context.Cause(hctx)
		abort(nil)
		if err != nil {
			if c != nil {
				quiet(c, pc)
			}
			s.raw.Close()
			return s.opError("connect", addr, watch.explain(err, cause))
		}
		st, _ := c.ConnectionState()
		abbreviated = offer.resumedAs(st.SessionID)
	}
	s.st.Mu.Lock()
	s.st.Conn, s.pc, s.st.Shut = c, pc, false
	s.restored = saved != nil
	s.resumed = s.restored || abbreviated
	s.unproven = s.restored
	s.announce = s.restored
	if !s.resumed {
		s.handshake++
	}
	s.st.Mu.Unlock()
	return nil
}

// kept is the connection state Shutdown keeps for the next Connect.
type kept struct {
	state *dtls.State
	cid   bool   // its protected records carry a Connection ID
	at    string // the raw socket's local host:port then, "" if unknown
}

// restorable reports whether a server can recognise the state restored
// from local address at: by its Connection ID, or because the address is
// the same one (and known); from any other address it would be a stranger.
func (k *kept) restorable(at string) bool { return k.cid || (k.at != "" && k.at == at) }

// localAddr is the raw socket's local host:port, or "" if unknown.
func localAddr(raw sock.Socket) string {
	a := sock.AssociationOf(raw)
	h, err1 := a.LocalHost()
	p, err2 := a.LocalPort()
	if err1 != nil || err2 != nil {
		return ""
	}
	return net.JoinHostPort(h, p)
}

// quiet ends a DTLS connection without a close_notify: its adapter dies
// first, so nothing it does afterwards (pion closes asynchronously) can
// reach the raw socket, which may already carry a new session.
func quiet(c *dtls.Conn, pc *packetConn) {
	pc.kill()
	c.Close()
}

// remoteAddr is the peer's address for pion: the raw socket's numeric one
// when it reports it, else the host and port as given.
func remoteAddr(raw sock.Socket, host, port string) net.Addr {
	a := sock.AssociationOf(raw)
	h, err1 := a.RemoteHost()
	p, err2 := a.RemotePort()
	if err1 == nil && err2 == nil {
		if a, err := netip.ParseAddr(h); err == nil {
			if n, err := strconv.ParseUint(p, 10, 16); err == nil {
				return net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, uint16(n)))
			}
		}
	}
	return sockkit.UnresolvedAddr{Net: "udp", Host: host, Port: port}
}

// Send implements sock.Socket: one datagram is one DTLS record.
//
// The first Send after a restored session is preceded by an empty record.
// A server that follows the client to a new address (RFC 9146) must do so
// before it answers, and pion's server (v3.1.15) hands a record's data to
// its application first and moves the session after, so the reply to the
// first record from a new port can go to the old one, lost: about one
// resume in twenty, each costing a CoAP retransmission (seconds). The empty
// record, processed in full before the data's record is read, moves the
// session first; its application reads nothing (zero-length application
// data is valid DTLS). It costs one 30-to-40-byte record per resume.
func (s *Socket) Send(b []byte) error {
	c, err := s.st.Current(s.raw)
	if err == nil {
		s.st.Mu.Lock()
		announce := s.announce && s.st.Conn == c
		s.announce = false
		s.st.Mu.Unlock()
		if announce {
			c.Write(nil) // a failure here fails the Write below too
		}
		if _, err = c.Write(b); err != nil {
			err = s.explain(c, err)
		}
	}
	if err != nil {
		return s.opError("send", nil, err)
	}
	return nil
}

// Receive implements sock.Socket. A record longer than b fills it and
// reports sock.ErrMsgSize, as a datagram would: records are read whole into
// the socket's own buffer first (pion refuses a short one).
func (s *Socket) Receive(b []byte) (int, error) {
	c, err := s.st.Current(s.raw)
	if err != nil {
		return 0, s.opError("receive", nil, err)
	}
	s.st.Mu.Lock()
	timeout := s.st.Timeout
	s.st.Mu.Unlock()
	if timeout < 0 {
		c.SetReadDeadline(time.Time{})
	} else {
		c.SetReadDeadline(time.Now().Add(timeout))
	}
	n, err := c.Read(s.rbuf[:])
	if err != nil {
		return 0, s.opError("receive", nil, s.explain(c, err))
	}
	s.st.Mu.Lock()
	s.unproven = false // the restored session works
	s.st.Mu.Unlock()
	k := copy(b, s.rbuf[:n])
	if k < n {
		return k, s.opError("receive", nil, sock.ErrMsgSize)
	}
	return k, nil
}

// explain reports a shutdown or close that raced an I/O on c as such.
func (s *Socket) explain(c *dtls.Conn, err error) error {
	s.st.Mu.Lock()
	shut, ours := s.st.Shut, s.st.Conn != c
	s.st.Mu.Unlock()
	switch {
	case shut:
		return sock.ErrShutdown
	case ours || s.raw.State() == sock.StateClosed:
		return net.ErrClosed
	}
	return sockkit.Normalize(err)
}

// Shutdown implements sock.Shutdowner: the raw socket is shut down and the
// session state kept; no close_notify is sent. A raw socket that cannot shut
// down is left connected and idle: the session's traffic stops all the same
// (a blocked Receive returns within the reader's 50 ms slice).
func (s *Socket) Shutdown() error {
	if s.raw.State() == sock.StateClosed {
		return s.opError("shutdown", nil, net.ErrClosed)
	}
	s.st.Mu.Lock()
	if s.st.Conn != nil && !s.st.Shut {
		if st, ok := s.st.Conn.ConnectionState(); ok {
			s.saved = &kept{state: &st, cid: s.pc.cid.Load(), at: localAddr(s.raw)}
		}
		s.pc.kill() // the session is kept as state; this connection is done
	}
	s.st.Shut = true
	s.st.Mu.Unlock()
	if sd, ok := sock.As[sock.Shutdowner](s.raw); ok {
		return sd.Shutdown()
	}
	return nil
}

// Close implements sock.Socket: close_notify if a session is up, then the
// raw socket is closed and the kept session forgotten.
func (s *Socket) Close() error {
	s.st.Mu.Lock()
	c, pc, shut := s.st.Conn, s.pc, s.st.Shut
	s.st.Conn, s.pc, s.st.Shut, s.saved, s.resumed, s.restored, s.unproven, s.announce = nil, nil, false, nil, false, false, false, false
	s.sessions.clear()
	s.st.Mu.Unlock()
	if c != nil {
		if shut {
			quiet(c, pc)
		} else {
			pc.closing.Store(true)
			c.Close() // sends close_notify over the raw socket
		}
	}
	return s.raw.Close()
}

// State implements sock.Socket: the raw socket's state, or StateShutdown
// while a raw socket that cannot shut down stays connected under a shut
// down session.
func (s *Socket) State() sock.State {
	st := s.raw.State()
	s.st.Mu.Lock()
	defer s.st.Mu.Unlock()
	if s.st.Shut && st == sock.StateConnected {
		return sock.StateShutdown
	}
	return st
}

// Unwrap returns the raw socket, whose capabilities the DTLS socket passes
// on (see sock.As).
func (s *Socket) Unwrap() sock.Socket { return s.raw }

// ReceiveTimeout implements sock.Socket.
func (s *Socket) ReceiveTimeout() time.Duration { return s.st.ReceiveTimeout() }

// SetReceiveTimeout implements sock.Socket. Zero polls with a 1 ms wait:
// pion reads in a goroutine of its own.
func (s *Socket) SetReceiveTimeout(d time.Duration) {
	if d == 0 {
		d = time.Millisecond
	}
	s.st.SetReceiveTimeout(d)
}

// InnerMTU implements sock.Socket: the raw socket's, less the DTLS record
// overhead; 0 on a closed socket.
func (s *Socket) InnerMTU() (int, error) {
	if s.raw.State() == sock.StateClosed {
		return 0, s.opError("get inner MTU", nil, net.ErrClosed)
	}
	mtu, err := s.raw.InnerMTU()
	if err != nil {
		return 0, err
	}
	return mtu - recordOverhead, nil
}

// SessionResumed implements sock.SessionResumer: true when the last Connect
// ran no full handshake: it restored the state kept by Shutdown, or resumed
// the session by ID in an abbreviated handshake.
func (s *Socket) SessionResumed() bool {
	s.st.Mu.Lock()
	defer s.st.Mu.Unlock()
	return s.resumed
}

// StateRestored reports whether the last Connect restored the state kept by
// Shutdown, running no handshake at all (the Connection ID case).
func (s *Socket) StateRestored() bool {
	s.st.Mu.Lock()
	defer s.st.Mu.Unlock()
	return s.restored
}

// FullHandshakes returns how many full handshakes the socket has run
// (abbreviated ones not counted).
func (s *Socket) FullHandshakes() int {
	s.st.Mu.Lock()
	defer s.st.Mu.Unlock()
	return s.handshake
}

func (s *Socket) opError(op string, addr net.Addr, err error) error {
	return seclayer.OpError("dtls", op, addr, err)
}

// packetConn adapts a connected datagram sock.Socket to the net.PacketConn
// pion drives. pion reads from it in a goroutine of its own, which ends
// when the raw socket is shut down or closed.
type packetConn struct {
	s       sock.Socket
	remote  net.Addr
	dead    atomic.Bool // the connection was retired: touch the raw socket no more
	closing atomic.Bool // Close runs: stop reading, still write the close_notify
	cid     atomic.Bool // a protected record carried a Connection ID
	watch   atomic.Pointer[handshakeWatch]
	mu      sync.Mutex
	dl      time.Time
}

func (c *packetConn) kill() { c.dead.Store(true) }

// readSlice bounds each wait on the raw socket: pion holds a lock across
// ReadFrom that Conn.Close needs, so a reader must notice a Close (or its
// connection's retirement) instead of waiting for a datagram forever.
const readSlice = 50 * time.Millisecond

func (c *packetConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		if c.dead.Load() || c.closing.Load() {
			return 0, nil, net.ErrClosed
		}
		c.mu.Lock()
		dl := c.dl
		c.mu.Unlock()
		wait := readSlice
		if !dl.IsZero() {
			left := time.Until(dl)
			if left <= 0 {
				return 0, nil, &net.OpError{Op: "read", Net: "udp", Err: sock.ErrTimeout}
			}
			wait = min(wait, left)
		}
		c.s.SetReceiveTimeout(wait)
		n, err := c.s.Receive(b)
		if c.dead.Load() {
			return 0, nil, net.ErrClosed // a datagram for the next session: not ours
		}
		if err != nil && sock.IsTimeout(err) {
			continue // a slice ended: look at the flags and the deadline again
		}
		if w := c.watch.Load(); w != nil && err == nil {
			w.received(b[:n])
		}
		return n, c.remote, err
	}
}

func (c *packetConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	if c.dead.Load() {
		return 0, net.ErrClosed
	}
	if w := c.watch.Load(); w != nil {
		w.sent(b)
	}
	out := b
	if len(b) > 4 && b[0] == contentCID {
		if b[3] == 0 && b[4] == 0 {
			if out = unwrapEpoch0Alert(b); out == nil {
				return len(b), nil // not an alert: malformed, dropped
			}
		} else {
			c.cid.Store(true)
		}
	}
	if err := c.s.Send(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// unwrapEpoch0Alert turns a tls12_cid record in epoch 0 into the plain
// alert record it wraps, or returns nil if it wraps something else.
//
// pion (v3.1.15) wraps the alert a client sends when the server's
// certificate fails verification in a Connection ID record, which RFC 9146
// reserves for protected records; epoch 0 has no cipher. Servers answer it
// with a decode_error alert, which can overtake the verification error, so
// Connect would report "DecodeError" instead of, say, an unknown authority
// (about one failed handshake in four on loopback). The record's inner
// plaintext is unencrypted: the alert, then its content type, then zero
// padding; the CID's length is not needed to find it from the end.
func unwrapEpoch0Alert(b []byte) []byte {
	const alertType = 21
	end := len(b)
	for end > 0 && b[end-1] == 0 {
		end-- // padding
	}
	// header (11) | CID | length (2) | level, description | type | padding
	if end < recordHeaderLen+2+3 || b[end-1] != alertType {
		return nil
	}
	if frag := len(b) - (end - 3); int(b[end-5])<<8|int(b[end-4]) != frag {
		return nil // the length field does not frame the alert: not ours to read
	}
	rec := make([]byte, 0, 15)
	rec = append(rec, alertType)
	rec = append(rec, b[1:11]...) // version, epoch 0, sequence number
	return append(rec, 0, 2, b[end-3], b[end-2])
}

func (c *packetConn) Close() error { return nil } // the Socket owns the raw socket

func (c *packetConn) LocalAddr() net.Addr {
	a := sock.AssociationOf(c.s)
	h, _ := a.LocalHost()
	p, _ := a.LocalPort()
	return sockkit.UnresolvedAddr{Net: "udp", Host: h, Port: p}
}

func (c *packetConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *packetConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.dl = t
	c.mu.Unlock()
	return nil
}

func (c *packetConn) SetWriteDeadline(time.Time) error { return nil }
