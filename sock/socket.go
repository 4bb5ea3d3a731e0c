package sock

import (
	"context"
	"strconv"
	"time"
)

// Socket is the contract every transport in tether implements: Go's net
// package (package netsock), the simulated network (package simnet), the
// (D)TLS layers, or an integrator's own stack. It is deliberately small;
// what only some stacks can do is an optional capability (Binder,
// Shutdowner, ...), found with As.
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

const (
	// DefaultReceiveTimeout is the receive timeout of a new socket.
	DefaultReceiveTimeout = 30 * time.Second

	// DefaultConnectTimeout bounds Connect when its context has no
	// deadline.
	DefaultConnectTimeout = 10 * time.Second
)
