package sockkit

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"

	"github.com/tether-iot/tether/sock"
)

// OpError builds the error a socket returns: a *net.OpError naming the
// operation ("connect", "send", ...), the network ("udp" or "tcp"), the
// local endpoint as Source and, as Addr, addr when given (an unresolved
// host, say) or else the remote endpoint. An OpError inside err is
// unwrapped first, so errors are never nested twice; err is Normalized.
// Every socket of tether's builds its errors with it, so an integrator's
// returns errors of the same shape.
func OpError(op, network string, local, remote netip.AddrPort, addr net.Addr, err error) error {
	if err == nil {
		return nil
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err // ours, with the host as the caller gave it
	}
	e := &net.OpError{Op: op, Net: network, Err: Normalize(err)}
	if local.IsValid() {
		e.Source = netAddr(network, local)
	}
	switch {
	case addr != nil:
		e.Addr = addr
	case remote.IsValid():
		e.Addr = netAddr(network, remote)
	}
	return e
}

// netAddr returns ap as the net.Addr of network.
func netAddr(network string, ap netip.AddrPort) net.Addr {
	if network == "tcp" {
		return net.TCPAddrFromAddrPort(ap)
	}
	return net.UDPAddrFromAddrPort(ap)
}

// UnresolvedAddr is a net.Addr for a host and port as a caller gave them to
// Connect or Bind, before resolution: what an error about a name reports.
type UnresolvedAddr struct {
	Net, Host, Port string
}

// Network implements net.Addr.
func (a UnresolvedAddr) Network() string { return a.Net }

// String implements net.Addr: host:port, with brackets for IPv6.
func (a UnresolvedAddr) String() string { return net.JoinHostPort(a.Host, a.Port) }

// marked is an error that keeps its cause's text and chain but also matches
// a sentinel of package sock, so callers can use errors.Is with either.
type marked struct {
	sentinel error
	cause    error
}

func (m *marked) Error() string   { return m.cause.Error() }
func (m *marked) Unwrap() []error { return []error{m.sentinel, m.cause} }

// Mark returns an error whose text is cause's and which matches both sentinel
// and everything cause matches under errors.Is. Implementations use it to
// make their stack's errors recognisable (a modem's "+CME ERROR: 3" marked
// with sock.ErrConnRefused, say).
func Mark(sentinel, cause error) error {
	if cause == nil || errors.Is(cause, sentinel) {
		return cause
	}
	return &marked{sentinel: sentinel, cause: cause}
}

// Normalize maps an error from a lower layer (Go's net package, a TLS
// library, a custom stack) onto the contract's conventions: any timeout
// becomes sock.ErrTimeout; the OS's refused connection, datagram too large
// and address not available (Winsock's too, on Windows) match
// sock.ErrConnRefused, sock.ErrMsgSize and sock.ErrAddrNotAvail. The
// operation and addresses of a *net.OpError are kept; context.Canceled and
// net.ErrClosed pass through unchanged.
func Normalize(err error) error {
	if err == nil {
		return nil
	}
	var op *net.OpError
	if errors.As(err, &op) {
		inner := normalizeInner(op.Err)
		if inner == op.Err {
			return err
		}
		cp := *op
		cp.Err = inner
		return &cp
	}
	return normalizeInner(err)
}

func normalizeInner(err error) error {
	switch {
	case errors.Is(err, sock.ErrTimeout):
		return err
	case errors.Is(err, context.Canceled):
		return err
	case sock.IsTimeout(err):
		return sock.ErrTimeout
	}
	for _, e := range osErrors {
		if errors.Is(err, e.errno) {
			return Mark(e.sentinel, err)
		}
	}
	return err
}

// osErrors are the OS's error numbers that match a sentinel; Windows adds
// Winsock's (errors_windows.go).
var osErrors = []struct{ errno, sentinel error }{
	{syscall.ECONNREFUSED, sock.ErrConnRefused},
	{syscall.EMSGSIZE, sock.ErrMsgSize},
	{syscall.EADDRNOTAVAIL, sock.ErrAddrNotAvail},
}
