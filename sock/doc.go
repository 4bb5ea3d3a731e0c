// Package sock is tether's socket contract: one small interface that every
// transport implements, so the CoAP and download layers above run unchanged
// over Go's net package (package netsock), a simulated network (simnet), a
// (D)TLS layer (tlssock, dtlssock) or an integrator's own stack (a cellular
// modem's AT sockets, say). It follows the networking API of the Anjay
// LwM2M SDK, in Go form. This package holds what a caller of sockets needs;
// package sockkit holds what an implementer reuses.
//
// # The contract
//
// Socket holds what every transport must do: Connect (by name or literal,
// with a context), Send, Receive (bounded by the receive timeout), Close,
// State, the receive timeout, and InnerMTU. Everything else is an optional
// capability with an interface of its own: Binder, Shutdowner, Associator
// (the host given to Connect and both endpoints), ByteCounter,
// BufferedDataReporter, SyscallConner, EndpointPreferrer, SessionResumer.
// Callers find a capability with As, as errors.As finds an error, and use
// the helpers Bind, Shutdown and AssociationOf, which report
// ErrNotSupported when a socket lacks the capability: an integrator
// implements only what its stack can do.
//
// # Layers
//
// A socket that decorates another (a TLS layer, a logging one) is a layer:
// it has a method Unwrap() Socket returning the socket beneath. It
// implements only what it does itself, and passes on what belongs to the
// socket beneath (Bind, Shutdown, the association, the byte counters,
// stickiness), which As finds down the chain. So a layer has exactly those
// capabilities of its raw socket, and a type assertion on a layer never
// finds a method that would answer ErrNotSupported. The OS handle, buffered
// data and session resumption are never passed on. socktest.Layer checks a
// layer against raw sockets with and without each capability.
//
// # States
//
// A socket is closed (no OS socket), bound, connected, or shut down. Shutdown
// disconnects on the transport layer but keeps the association: its remote
// host, remote hostname, remote port, local host and local port stay as
// they were, while Send and Receive fail at once with ErrShutdown. That is
// what lets a download be suspended while the device is offline and resumed
// later on the same server. Connect, Bind or Close leave the shutdown state;
// a closed socket can connect again.
//
// # Usage
//
//	s, _ := netsock.New("udp", &sock.Config{Preferred: &endpoint})
//	err := s.Connect(ctx, "coap.example", "5683")
//	err = s.Send(request)
//	n, err := s.Receive(buf)
//	err = sock.Shutdown(s)                            // offline: the association stays
//	host, _ := sock.AssociationOf(s).RemoteHostname() // "coap.example"
//	err = s.Connect(ctx, host, "5683")                // online again, same node
//
// A PreferredEndpoint is caller-owned storage for IP address stickiness: a
// reconnect by name returns to the address used before, whatever the DNS
// order, as long as the name still resolves to it.
//
// # Errors
//
// Errors are *net.OpError values naming the operation and addresses, whose
// Err matches one of this package's sentinels under errors.Is. A timeout is
// ErrTimeout, which is a net.Error and matches both os.ErrDeadlineExceeded
// and context.DeadlineExceeded; I/O on a closed socket matches net.ErrClosed.
// An error that no retry can cure is marked where it is made (Permanent,
// IsPermanent).
//
// # Implementing a socket
//
// Implement Socket and whichever capabilities your stack has, build it with
// package sockkit (resolution with the same stickiness and family rules,
// errors of the same shape), and run the conformance suite in package
// socktest against your socket. Packages netsock and simnet are two complete
// implementations.
//
// sock depends on the standard library only; it must never import a socket
// implementation, the implementer's kit, or tether's CoAP, download or
// command packages.
package sock
