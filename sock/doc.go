// Package sock is tether's socket layer: one small contract that every
// transport implements, so the CoAP and download layers above run unchanged
// over Go's net package, a simulated network, a (D)TLS layer or an
// integrator's own stack (a cellular modem's AT sockets, say). It follows
// the networking API of the Anjay LwM2M SDK, in Go form.
//
// # The contract
//
// Socket holds what every transport must do: Connect (by name or literal,
// with a context), Send, Receive (bounded by the receive timeout), Close,
// State, the receive timeout, and InnerMTU. Everything else is an optional
// capability with an interface of its own (Binder, Shutdowner,
// RemoteHostnamer, ByteCounter, ...), detected by type assertion as
// io.WriterTo is. Callers use the helpers (Shutdown, RemoteHostname,
// BytesSent, ...), which return ErrNotSupported when a socket lacks the
// capability: an integrator implements only what its stack can do.
//
// # States
//
// A socket is closed (no OS socket), bound, connected, or shut down. Shutdown
// disconnects on the transport layer but keeps the association: the remote
// host, remote hostname, remote port, local host and local port keep
// answering as before, while Send and Receive fail at once with ErrShutdown.
// That is what lets a download be suspended while the device is offline and
// resumed later on the same server. Connect, Bind or Close leave the shutdown
// state; a closed socket can connect again.
//
// # Usage
//
// NetSocket is the production implementation, for UDP and TCP over IPv4 and
// IPv6:
//
//	s, _ := netsock.New("udp", &sock.Config{Preferred: &endpoint})
//	err := s.Connect(ctx, "coap.example", "5683")
//	err = s.Send(request)
//	n, err := s.Receive(buf)
//	err = sock.Shutdown(s)                 // offline: the association stays
//	host, _ := sock.RemoteHostname(s)      // "coap.example"
//	err = s.Connect(ctx, host, "5683")     // online again, same node
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
// Normalize maps another library's errors onto these conventions.
//
// # Implementing a socket
//
// Implement Socket and whichever capabilities your stack has, use
// Candidates for resolution with the same stickiness and family rules, and
// run the conformance suite in package socktest against your socket. Package
// simnet is a complete second implementation, over a simulated network.
//
// sock depends on the standard library and golang.org/x/sys only; it must
// never import tether's CoAP, download or command packages.
package sock
