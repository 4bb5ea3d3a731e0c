package sock

import (
	"fmt"
	"net/netip"
	"sync"
)

// PreferredEndpoint is caller-owned storage for IP address stickiness. A
// socket configured with one connects to the stored address whenever the
// name it is asked for still resolves to it (whatever the DNS order), and
// stores the address of every successful connect. Nothing but a successful
// connect or the owner writes it, so it outlives sockets: a device that
// reconnects to a server name behind DNS round-robin returns to the same
// node, which is what a resumed download needs.
//
// The whole endpoint is compared, port included. The zero value holds
// nothing and is ready to use; a PreferredEndpoint is safe for concurrent
// use. It marshals to text ("192.0.2.1:5683", "[2001:db8::1]:5683", or ""
// when empty) so it can be persisted with the state of a download.
type PreferredEndpoint struct {
	mu sync.Mutex
	ap netip.AddrPort
}

// Load returns the stored endpoint, and false when there is none.
func (p *PreferredEndpoint) Load() (netip.AddrPort, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ap, p.ap.IsValid()
}

// Store replaces the stored endpoint. Storing the zero AddrPort empties it.
func (p *PreferredEndpoint) Store(ap netip.AddrPort) {
	p.mu.Lock()
	p.ap = ap
	p.mu.Unlock()
}

// String returns the stored endpoint as text, or "" when empty.
func (p *PreferredEndpoint) String() string {
	ap, ok := p.Load()
	if !ok {
		return ""
	}
	return ap.String()
}

// MarshalText implements encoding.TextMarshaler.
func (p *PreferredEndpoint) MarshalText() ([]byte, error) {
	return []byte(p.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler. Empty text empties the
// storage; anything else must be an address and a non-zero port.
func (p *PreferredEndpoint) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		p.Store(netip.AddrPort{})
		return nil
	}
	ap, err := netip.ParseAddrPort(string(text))
	if err != nil {
		return fmt.Errorf("sock: preferred endpoint: %w", err)
	}
	if ap.Port() == 0 {
		return fmt.Errorf("sock: preferred endpoint %q: %w", text, ErrInvalidPort)
	}
	p.Store(ap)
	return nil
}
