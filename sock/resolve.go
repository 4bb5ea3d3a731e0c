package sock

import (
	"context"
	"net/netip"
)

// Resolver resolves host names. *net.Resolver satisfies it, and
// net.DefaultResolver is what sockets use when none is configured; tests and
// simulated networks give their own (sockkit.StaticResolver, simnet's DNS)
// to serve several addresses in an order they control.
type Resolver interface {
	// LookupNetIP looks host up for network "ip", "ip4" or "ip6".
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Family is an IP address family constraint or preference.
type Family uint8

const (
	// AnyFamily: no constraint; keep the resolver's order.
	AnyFamily Family = iota
	// IPv4 only or first.
	IPv4
	// IPv6 only or first.
	IPv6
)

// String returns "any", "ipv4" or "ipv6".
func (f Family) String() string {
	switch f {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return "any"
}

// Has reports whether a belongs to the family (every address belongs to
// AnyFamily).
func (f Family) Has(a netip.Addr) bool {
	switch f {
	case IPv4:
		return a.Unmap().Is4()
	case IPv6:
		return a.Is6() && !a.Is4In6()
	}
	return true
}

// FamilyOf returns the family of a.
func FamilyOf(a netip.Addr) Family {
	if a.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}
