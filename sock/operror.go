package sock

import (
	"errors"
	"net"
	"net/netip"
)

// OpError builds the error a socket returns: a *net.OpError naming the
// operation ("connect", "send", ...), the network ("udp" or "tcp"), the
// local endpoint as Source and, as Addr, addr when given (an unresolved
// host, say) or else the remote endpoint. An OpError inside err is
// unwrapped first, so errors are never nested twice; err is Normalized.
// Socket implementations outside this module use it to return errors of
// the same shape as NetSocket's.
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
