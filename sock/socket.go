package sock

import (
	"context"
	"strconv"
	"syscall"
	"time"
)

// Socket is the contract every transport in tether implements: Go's net
// package (NetSocket), the simulated network (package simnet), the (D)TLS
// layers, or an integrator's own stack. It is deliberately small; what only
// some stacks can do is an optional capability (Binder, Shutdowner, ...)
// detected by type assertion, with a helper function per capability that
// returns ErrNotSupported when it is missing.
//
// A Socket is safe for one goroutine sending and another receiving at once.
// Close, Shutdown and Connect may be called from any goroutine while another
// is blocked in Receive: the blocked call returns promptly with an error
// matching net.ErrClosed or ErrShutdown.
type Socket interface {
	// Connect resolves host (a DNS name or an IP literal) and port (decimal)
	// and connects to one of the addresses. It creates the OS socket if
	// there is none; a socket that is shut down is re-created. On success
	// the socket is StateConnected and remembers host verbatim as its
	// remote hostname. Resolution failure matches ErrAddrNotAvail, a
	// refusal ErrConnRefused, an expired ctx ErrTimeout.
	Connect(ctx context.Context, host, port string) error

	// Send sends all of b: exactly one datagram on a datagram socket. A
	// short write is an error.
	Send(b []byte) error

	// Receive waits up to the receive timeout for data and copies it into
	// b. On a datagram socket one call returns one datagram; a datagram
	// longer than b fills b, and Receive returns len(b) with an error
	// matching ErrMsgSize. On a stream socket, a peer's orderly close reads
	// as (0, nil). A timeout matches ErrTimeout.
	Receive(b []byte) (int, error)

	// Close releases the OS socket. The object stays usable: Connect or
	// Bind creates a new one. Close forgets the remote hostname and port.
	// Closing a closed socket is not an error.
	Close() error

	// State reports the socket's state as the tutorial defines it.
	State() State

	// ReceiveTimeout returns the timeout Receive uses.
	ReceiveTimeout() time.Duration

	// SetReceiveTimeout sets the timeout Receive uses: a negative duration
	// waits forever, zero polls (returns ErrTimeout at once when no data is
	// queued).
	SetReceiveTimeout(d time.Duration)

	// InnerMTU returns the largest payload one Send can carry without IP
	// fragmentation: the path MTU minus the IP and transport headers (and,
	// on a secure socket, the record overhead). Stream sockets return
	// ErrNotSupported.
	InnerMTU() (int, error)
}

// State is a socket's state. There is no separate "listening" state: a bound
// stream socket is listening.
type State int

const (
	// StateClosed: there is no OS socket (a new object, after Close, after a
	// failed Bind).
	StateClosed State = iota
	// StateBound: after Bind; a datagram socket can receive from anyone.
	StateBound
	// StateConnected: after a successful Connect. Only this state is
	// "online" for the layers above.
	StateConnected
	// StateShutdown: after Shutdown, until the next Connect, Bind or Close.
	// The association (remote and local host and port, remote hostname)
	// is kept; Send and Receive fail at once with ErrShutdown.
	StateShutdown
)

var stateNames = [...]string{"closed", "bound", "connected", "shutdown"}

// String returns the state's name as the tutorial spells it.
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// DefaultReceiveTimeout is the receive timeout of a new socket.
const DefaultReceiveTimeout = 30 * time.Second

// DefaultConnectTimeout bounds Connect when its context has no deadline.
const DefaultConnectTimeout = 10 * time.Second

// Binder is a socket that can bind to a local address and port before
// connecting, to keep the local port stable across reconnects. Bind creates
// the OS socket if there is none, closing (and re-creating) one that is
// shut down; on failure the socket is left closed. Port "0" or "" picks an
// ephemeral port; host "" binds the wildcard address.
type Binder interface {
	Bind(ctx context.Context, host, port string) error
}

// Shutdowner is a socket that can be shut down: disconnected on the transport
// layer (POSIX shutdown with SHUT_RDWR) while keeping its association. A
// secure socket shuts only its raw socket down and sends no close_notify, so
// a later Connect can resume the session. Suspending a download needs it.
// Shutting down a closed socket fails with an error matching net.ErrClosed.
type Shutdowner interface {
	Shutdown() error
}

// RemoteHoster reports the peer's numeric address as text ("192.0.2.1",
// "2001:db8::1"), never a name. It keeps answering after Shutdown.
type RemoteHoster interface {
	RemoteHost() (string, error)
}

// RemoteHostnamer reports the host string given to the last successful
// Connect, exactly as given (a name or a literal). It keeps answering after
// Shutdown; Close forgets it.
type RemoteHostnamer interface {
	RemoteHostname() (string, error)
}

// RemotePorter reports the peer's port as decimal text.
type RemotePorter interface {
	RemotePort() (string, error)
}

// LocalHoster reports the local numeric address as text.
type LocalHoster interface {
	LocalHost() (string, error)
}

// LocalPorter reports the local port as decimal text.
type LocalPorter interface {
	LocalPort() (string, error)
}

// ByteCounter reports the bytes sent and received over the socket object's
// whole life; Close does not reset them. A secure socket counts its raw
// socket's bytes, records and handshakes included.
type ByteCounter interface {
	BytesSent() uint64
	BytesReceived() uint64
}

// BufferedDataReporter reports whether a layer of the socket (TLS, say) holds
// received data that the OS socket would not signal as readable, so an event
// loop must call Receive without waiting for readiness.
type BufferedDataReporter interface {
	HasBufferedData() bool
}

// SyscallConner exposes the OS socket for an event loop to poll, as
// syscall.Conn does. The handle changes when Connect or Bind re-creates the
// OS socket.
type SyscallConner interface {
	SyscallConn() (syscall.RawConn, error)
}

// EndpointPreferrer is a socket that supports IP address stickiness: Connect
// prefers the address held by the PreferredEndpoint when the name still
// resolves to it, and stores the address it connected to. Setting nil turns
// stickiness off.
type EndpointPreferrer interface {
	SetPreferredEndpoint(p *PreferredEndpoint)
}

// SessionResumer is a secure socket ((D)TLS) that reports whether its last
// Connect resumed an earlier session (an abbreviated handshake, or none at
// all with a DTLS Connection ID) instead of a full handshake.
type SessionResumer interface {
	SessionResumed() bool
}
