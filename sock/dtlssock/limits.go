package dtlssock

import "time"

// Limits bound what a server (Listen) holds, before and after its
// handshakes complete. A zero field takes its default (the constants
// below); a client (New) ignores them.
//
// Before a handshake completes, a server keeps state for a source that
// has proved nothing: pion cannot issue stateless cookies (its server
// keeps state, its ECDHE key pair among it, from the first ClientHello).
// The listener bounds that state instead. A handshake is unproven until
// the ClientHello that carries the cookie of pion's HelloVerifyRequest
// comes back, which shows its source receives what is sent to it; from
// then on it is proven. When a new ClientHello finds the handshakes in
// progress at a cap (MaxHandshakes in all, MaxHandshakesPerIP from its IP
// address), it displaces the oldest unproven one (from that address, for
// the per-address cap), never a proven one; with none to displace it is
// dropped, and the client sends it again; so is one that comes while the
// goroutines of 2×MaxHandshakes handshakes (displaced ones still ending
// among them) run. An unproven handshake ends after
// UnprovenTimeout, a proven one after 30 s. Records that arrive before a
// handshake completes are held up to HeldRecords per connection and
// HeldBytes for the whole listener; beyond that they are dropped, as a
// full socket buffer drops them.
//
// After a handshake, a session that receives nothing for IdleTimeout is
// closed without a close_notify and leaves memory, and at most MaxSessions
// are live (the least recently heard from is closed first). Its secrets
// stay in a compact store (at most StoredSessions, each for at most
// SessionLifetime, least recently used out first), so the client's next
// handshake resumes the session by its ID (an abbreviated handshake: no
// key exchange, no certificate); while the session is live, a client with
// a Connection ID restores it with no handshake at all.
type Limits struct {
	// MaxHandshakes caps the handshakes in progress. Default
	// DefaultMaxHandshakes.
	MaxHandshakes int
	// MaxHandshakesPerIP caps the handshakes in progress from one IP
	// address (any port). Default DefaultMaxHandshakesPerIP.
	MaxHandshakesPerIP int
	// UnprovenTimeout ends a handshake whose source has not returned
	// its cookie. Default DefaultUnprovenTimeout.
	UnprovenTimeout time.Duration
	// HeldRecords caps the datagrams one connection holds before its
	// handshake completes. Default DefaultHeldRecords.
	HeldRecords int
	// HeldBytes caps the bytes all connections together hold before
	// their handshakes complete. Default DefaultHeldBytes.
	HeldBytes int
	// IdleTimeout closes a session that has received nothing for that
	// long; its secrets stay in the session store. Default
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxSessions caps the live sessions. Default DefaultMaxSessions.
	MaxSessions int
	// StoredSessions caps the sessions whose secrets are kept for
	// resumption by session ID. Default DefaultStoredSessions.
	StoredSessions int
	// SessionLifetime bounds how long a session can be resumed by ID
	// after its full handshake. Default DefaultSessionLifetime.
	SessionLifetime time.Duration
	// ReadBuffer is the receive buffer Listen asks of a packet conn that
	// has SetReadBuffer (a *net.UDPConn), in bytes; the system may give
	// less (Linux: net.core.rmem_max). A flood fills a small one while the
	// server is not scheduled for a few milliseconds, and the kernel then
	// drops legitimate datagrams with the junk. Negative leaves the
	// buffer as it is. Default DefaultReadBuffer.
	ReadBuffer int
}

// The defaults of Limits.
//
// The handshake caps set how fast a spoofer must send to displace a
// legitimate client's unproven handshake: MaxHandshakes new ClientHellos
// within the client's round trip (the README has the figures). A pion
// server handshake in progress holds about 55 KB of RSS, so the default
// cap costs about 56 MB. A live session holds about 53 KB and three
// goroutines (530 MB at the default MaxSessions), a stored one about
// 460 B (46 MB at the default StoredSessions).
//
// The idle time is longer than the gaps a device's link usually has while
// it works (a radio that drops for a minute, a NAT binding that changes,
// CoAP's EXCHANGE_LIFETIME of 247 s): those end in a restore with no
// handshake. A device that goes offline for longer (a sleep of hours, a
// night) ends it in a resumption from the store, which keeps a session's
// secrets for a day at a few hundred bytes each.
const (
	DefaultMaxHandshakes      = 1024
	DefaultMaxHandshakesPerIP = 32
	DefaultUnprovenTimeout    = 5 * time.Second
	DefaultHeldRecords        = 32
	DefaultHeldBytes          = 4 << 20
	DefaultIdleTimeout        = 5 * time.Minute
	DefaultMaxSessions        = 10_000
	DefaultStoredSessions     = 100_000
	DefaultSessionLifetime    = 24 * time.Hour
	DefaultReadBuffer         = 1 << 20
)

// withDefaults returns l with its zero fields set to the defaults.
func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxHandshakes, DefaultMaxHandshakes)
	def(&l.MaxHandshakesPerIP, DefaultMaxHandshakesPerIP)
	defDur(&l.UnprovenTimeout, DefaultUnprovenTimeout)
	def(&l.HeldRecords, DefaultHeldRecords)
	def(&l.HeldBytes, DefaultHeldBytes)
	defDur(&l.IdleTimeout, DefaultIdleTimeout)
	def(&l.MaxSessions, DefaultMaxSessions)
	def(&l.StoredSessions, DefaultStoredSessions)
	defDur(&l.SessionLifetime, DefaultSessionLifetime)
	if l.ReadBuffer == 0 {
		l.ReadBuffer = DefaultReadBuffer
	}
	return l
}
