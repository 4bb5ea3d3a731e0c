package sockkit

import (
	"context"
	"errors"
	"net"
	"net/netip"

	"github.com/tether-iot/tether/sock"
)

// ParseNetwork parses a network name as a socket constructor takes it
// (netsock.New, simnet's Host.NewSocket): "udp", "udp4", "udp6", "tcp",
// "tcp4" or "tcp6". It returns the transport, "udp" or "tcp", and the family
// the digit forces (sock.AnyFamily without one); any other name is a
// net.UnknownNetworkError.
func ParseNetwork(network string) (transport string, only sock.Family, err error) {
	switch network {
	case "udp", "udp4", "udp6":
		transport = "udp"
	case "tcp", "tcp4", "tcp6":
		transport = "tcp"
	default:
		return "", sock.AnyFamily, net.UnknownNetworkError(network)
	}
	switch network[len(network)-1] {
	case '4':
		only = sock.IPv4
	case '6':
		only = sock.IPv6
	}
	return transport, only, nil
}

// Connect is what every socket's Connect shares, around try, which
// connects the socket to one endpoint. Without a deadline, ctx is bounded
// by sock.DefaultConnectTimeout. host and port are resolved with
// Candidates under p (through r), and each candidate is tried in turn
// until one connects, ctx ends, or try reports net.ErrClosed (the socket
// was closed meanwhile); the endpoint connected to is stored in p.Sticky.
// The error is the resolution's or the last attempt's, for the socket to
// wrap with OpError and an UnresolvedAddr of host and port; on success the
// socket remembers host as its hostname.
func Connect(ctx context.Context, r sock.Resolver, host, port string, p Policy, try func(ctx context.Context, to netip.AddrPort) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, sock.DefaultConnectTimeout)
		defer cancel()
	}
	cands, err := Candidates(ctx, r, host, port, p)
	if err != nil {
		return err
	}
	var last error
	for _, c := range cands {
		if err := ctx.Err(); err != nil {
			last = err
			break
		}
		if last = try(ctx, c); last == nil {
			if p.Sticky != nil {
				p.Sticky.Store(c)
			}
			return nil
		}
		if errors.Is(last, net.ErrClosed) {
			break // closed under us
		}
	}
	return last
}

// BindEndpoint resolves where Bind binds: host "" is the wildcard address
// (IPv4's, unless p.Only is IPv6), any other host its first candidate under
// p; port "" or "0" asks for an ephemeral port. Errors match
// sock.ErrInvalidPort, sock.ErrInvalidHost or sock.ErrAddrNotAvail.
func BindEndpoint(ctx context.Context, r sock.Resolver, host, port string, p Policy) (netip.AddrPort, error) {
	pn, err := ParsePort(port, true)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if host == "" {
		a := netip.IPv4Unspecified()
		if p.Only == sock.IPv6 {
			a = netip.IPv6Unspecified()
		}
		return netip.AddrPortFrom(a, pn), nil
	}
	cands, err := Candidates(ctx, r, host, "1", p)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(cands[0].Addr(), pn), nil
}
