package sockkit

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/tether-iot/tether/sock"
)

// Policy says which resolved addresses a connect may use and in what order.
type Policy struct {
	// Only restricts the candidates to one family: a forced family
	// ("udp4") or the family of an already-bound socket.
	Only sock.Family
	// Prefer puts the addresses of one family before the others.
	Prefer sock.Family
	// Sticky, when it holds an address among the candidates, puts that
	// address first.
	Sticky *sock.PreferredEndpoint
	// Bound is the local endpoint of a bound socket, which connects from
	// it: only to addresses of its family, or, bound to a wildcard
	// address, to those first (it may re-create itself in the other
	// family on the same port).
	Bound netip.AddrPort
}

// Candidates resolves host and port into the endpoints a Connect should try,
// in order: the sticky endpoint first when host still resolves to it, then
// the addresses of the preferred family, then the rest, each group in the
// resolver's order. An IP literal is not looked up. Errors match
// sock.ErrInvalidHost, sock.ErrInvalidPort or sock.ErrAddrNotAvail.
//
// Socket implementations outside this module use it to get the same
// stickiness and family rules as NetSocket.
func Candidates(ctx context.Context, r sock.Resolver, host, port string, p Policy) ([]netip.AddrPort, error) {
	if b := p.Bound; b.IsValid() {
		if b.Addr().IsUnspecified() {
			p.Prefer = sock.FamilyOf(b.Addr())
		} else {
			p.Only = sock.FamilyOf(b.Addr())
		}
	}
	if err := CheckHost(host); err != nil {
		return nil, err
	}
	pn, err := ParsePort(port, false)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		if r == nil {
			r = net.DefaultResolver
		}
		network := "ip"
		switch p.Only {
		case sock.IPv4:
			network = "ip4"
		case sock.IPv6:
			network = "ip6"
		}
		addrs, err = r.LookupNetIP(ctx, network, host)
		if err != nil {
			return nil, Mark(sock.ErrAddrNotAvail, err)
		}
	}
	out := make([]netip.AddrPort, 0, len(addrs))
	for _, a := range addrs {
		if a.Is4In6() {
			a = a.Unmap()
		}
		if a.IsValid() && p.Only.Has(a) {
			out = append(out, netip.AddrPortFrom(a, pn))
		}
	}
	if len(out) == 0 {
		if p.Only != sock.AnyFamily {
			return nil, fmt.Errorf("%w: no %s address for %q", sock.ErrAddrNotAvail, p.Only, host)
		}
		return nil, fmt.Errorf("%w: no address for %q", sock.ErrAddrNotAvail, host)
	}
	if p.Prefer != sock.AnyFamily {
		slices.SortStableFunc(out, func(a, b netip.AddrPort) int {
			return cmp.Compare(rank(p.Prefer, a.Addr()), rank(p.Prefer, b.Addr()))
		})
	}
	if p.Sticky != nil {
		if want, ok := p.Sticky.Load(); ok {
			if i := slices.Index(out, want); i > 0 {
				copy(out[1:i+1], out[:i])
				out[0] = want
			}
		}
	}
	return out, nil
}

func rank(prefer sock.Family, a netip.Addr) int {
	if prefer.Has(a) {
		return 0
	}
	return 1
}

// maxHostLen is the longest DNS name in text form, without the final dot
// (RFC 1035 section 2.3.4: 255 octets on the wire).
const maxHostLen = 253

// CheckHost reports whether host can be connected to: an IP literal (with an
// optional IPv6 zone) or a DNS name of at most 253 characters (one final dot
// aside) whose labels are 1 to 63 characters long, with no spaces or control
// characters. Errors match sock.ErrInvalidHost.
func CheckHost(host string) error {
	if host == "" {
		return fmt.Errorf("%w: empty host", sock.ErrInvalidHost)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	name := strings.TrimSuffix(host, ".")
	if len(name) > maxHostLen {
		return fmt.Errorf("%w: name is %d characters long, DNS allows %d", sock.ErrInvalidHost, len(name), maxHostLen)
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" {
			return fmt.Errorf("%w: %q has an empty label", sock.ErrInvalidHost, host)
		}
		if len(label) > 63 {
			return fmt.Errorf("%w: label of %d characters, DNS allows 63", sock.ErrInvalidHost, len(label))
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; c <= ' ' || c == 0x7f || c == '%' || c == '/' || c == '[' || c == ']' {
				return fmt.Errorf("%w: %q has character %q", sock.ErrInvalidHost, host, c)
			}
		}
	}
	return nil
}

// ParsePort parses a decimal port. Zero (and "", which means zero) is
// accepted only when allowZero is set, as for Bind. Errors match
// sock.ErrInvalidPort.
func ParsePort(port string, allowZero bool) (uint16, error) {
	if port == "" && allowZero {
		return 0, nil
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || len(port) > 5 || port[0] == '+' {
		return 0, fmt.Errorf("%w: %q", sock.ErrInvalidPort, port)
	}
	if n == 0 && !allowZero {
		return 0, fmt.Errorf("%w: port 0", sock.ErrInvalidPort)
	}
	return uint16(n), nil
}

// StaticResolver answers from a table set by its owner, with no network
// traffic. Tests use it to serve several addresses in an order they change
// between connects; a device with fixed server addresses can use it in
// production. Names are matched case-insensitively, a final dot ignored.
// The zero value is an empty table; it is safe for concurrent use.
type StaticResolver struct {
	mu    sync.Mutex
	hosts map[string][]netip.Addr
}

// Set makes name resolve to addrs, in that order, replacing what it resolved
// to before. Setting no addresses removes the name.
func (r *StaticResolver) Set(name string, addrs ...netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := canonicalName(name)
	if len(addrs) == 0 {
		delete(r.hosts, key)
		return
	}
	if r.hosts == nil {
		r.hosts = make(map[string][]netip.Addr)
	}
	r.hosts[key] = slices.Clone(addrs)
}

// LookupNetIP implements Resolver. An unknown name, or one with no address
// of the asked family, is a *net.DNSError with IsNotFound set.
func (r *StaticResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	only := sock.AnyFamily
	switch network {
	case "ip4":
		only = sock.IPv4
	case "ip6":
		only = sock.IPv6
	case "ip":
	default:
		return nil, net.UnknownNetworkError(network)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []netip.Addr
	for _, a := range r.hosts[canonicalName(host)] {
		if only.Has(a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, nil
}

func canonicalName(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}
