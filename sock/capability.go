package sock

import (
	"context"
	"syscall"
)

// Optional capabilities. A socket has one when it implements its interface;
// a layer (a socket decorating another, see As) also has those of the
// socket beneath that it passes on. Find them with As, or with the helpers
// Bind, Shutdown and AssociationOf, which report ErrNotSupported when the
// socket lacks the capability: an integrator implements only what its
// stack can do.

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

// Associator is a socket that reports its Association: the host given to
// Connect and the remote and local endpoints, the same after Shutdown as
// before it.
type Associator interface {
	Association() Association
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

// ReadNotifier is a socket that says when data arrives, so that its owner
// receives without a goroutine waiting in Receive: a process that hosts
// many mostly idle clients holds no goroutine for an idle one. After
// NotifyRead(f), f is called each time the receive queue goes from empty
// to holding data, and at once if data already waits; the owner then
// calls Receive with a zero timeout until it reports sock.ErrTimeout. f
// runs on the socket's goroutine of the moment: it must return at once
// and must not call the socket (it starts whatever receives).
// NotifyRead(nil) stops the calls and returns once none is in progress.
// The function stays set across Connect, Shutdown and Bind. A layer never
// passes it on: what is readable beneath is records, not data.
type ReadNotifier interface {
	NotifyRead(f func())
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

// As returns capability T of s (one of the interfaces above, or any other)
// and true, or false when s lacks it, as errors.As finds an error in a
// chain.
//
// A socket that decorates another (a TLS or DTLS layer, a logging one) is a
// layer: it has a method
//
//	Unwrap() Socket
//
// returning the socket beneath. A layer implements only what it does
// itself, and passes on the capabilities that belong to the socket beneath
// (Binder, Shutdowner, Associator, ByteCounter, EndpointPreferrer): As looks
// for those down the chain. So a layer has exactly the ones the socket
// beneath has, and a type assertion on a layer never finds a method that
// would have to answer ErrNotSupported. The OS handle, buffered data and
// session resumption are never passed on: a layer changes what they mean.
func As[T any](s Socket) (T, bool) {
	down := passedOn[T]()
	for s != nil {
		if c, ok := s.(T); ok {
			return c, true
		}
		l, ok := s.(interface{ Unwrap() Socket })
		if !ok || !down {
			break
		}
		s = l.Unwrap()
	}
	var zero T
	return zero, false
}

// passedOn reports whether a layer passes capability T on from the socket
// beneath.
func passedOn[T any]() bool {
	switch any((*T)(nil)).(type) {
	case *Binder, *Shutdowner, *Associator, *ByteCounter, *EndpointPreferrer:
		return true
	}
	return false
}

// Bind binds s to a local host and port; see Binder.
func Bind(ctx context.Context, s Socket, host, port string) error {
	if b, ok := As[Binder](s); ok {
		return b.Bind(ctx, host, port)
	}
	return ErrNotSupported
}

// Shutdown shuts s down, keeping its association; see Shutdowner.
func Shutdown(s Socket) error {
	if sd, ok := As[Shutdowner](s); ok {
		return sd.Shutdown()
	}
	return ErrNotSupported
}

// AssociationOf returns the association of s; see Associator. For a socket
// without the capability, its getters report ErrNotSupported.
func AssociationOf(s Socket) Association {
	if a, ok := As[Associator](s); ok {
		return a.Association()
	}
	return Association{unsupported: true}
}
