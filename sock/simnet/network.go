package simnet

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/sockkit"
)

// Network is a simulated IP network: hosts with addresses, each attached by
// one link whose faults a test controls, and a DNS table. Create it with New.
// All methods are safe for concurrent use.
type Network struct {
	dns sockkit.StaticResolver

	mu     sync.Mutex
	rng    *rand.Rand
	hosts  map[string]*Host
	byAddr map[netip.Addr]*Host
	udp    map[bindKey]*endpoint
	tcp    map[bindKey]*Listener
	// tcpUsed holds the local endpoints of open connections.
	tcpUsed map[bindKey]bool
	stats   Stats
}

// Stats counts what the network did with the datagrams and segments sent
// over it.
type Stats struct {
	Sent       uint64 // datagrams or segments handed to the network
	Delivered  uint64 // copies that reached an endpoint
	Lost       uint64 // dropped by a link's loss, or a link that was down
	Duplicated uint64 // extra copies made by a link
	Reordered  uint64 // copies held back by a link's reordering
	Refused    uint64 // datagrams to a port nobody had bound
}

// New returns an empty network whose random faults come from seed: the same
// seed and the same traffic give the same losses.
func New(seed uint64) *Network {
	return &Network{
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		hosts:   make(map[string]*Host),
		byAddr:  make(map[netip.Addr]*Host),
		udp:     make(map[bindKey]*endpoint),
		tcp:     make(map[bindKey]*Listener),
		tcpUsed: make(map[bindKey]bool),
	}
}

// DNS returns the network's name table. Sockets created on its hosts resolve
// through it (it is their sock.Resolver); set a name's addresses, in the
// order to answer them, with Set.
func (n *Network) DNS() *sockkit.StaticResolver { return &n.dns }

// Stats returns the counters so far.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// LinkConfig describes the faults of the link that attaches a host. Each
// datagram (or stream segment) crosses the sender's link and then the
// receiver's, and each link applies its own faults.
type LinkConfig struct {
	// Delay is the one-way latency this link adds.
	Delay time.Duration
	// Jitter adds a uniformly random extra delay in [0, Jitter).
	Jitter time.Duration
	// Loss is the probability that the link drops a datagram.
	Loss float64
	// Duplicate is the probability that the link delivers a second copy.
	Duplicate float64
	// Reorder is the probability that the link holds a datagram back by
	// ReorderDelay, letting later ones overtake it.
	Reorder float64
	// ReorderDelay is how long a reordered datagram is held; zero means
	// 10ms plus twice the Delay.
	ReorderDelay time.Duration
	// MTU is the link MTU; zero means 1500.
	MTU int
}

func (c LinkConfig) mtu() int {
	if c.MTU > 0 {
		return c.MTU
	}
	return 1500
}

// Host is a machine on the network, with one or more addresses and one link.
type Host struct {
	net  *Network
	name string

	// Guarded by net.mu.
	addrs    []netip.Addr
	link     LinkConfig
	down     bool
	nextPort uint16
}

// AddHost attaches a host with the given addresses ("10.0.0.1",
// "2001:db8::1"). It panics on a malformed or duplicate address or name,
// which is a mistake in the test, not a condition to handle.
func (n *Network) AddHost(name string, addrs ...string) *Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, dup := n.hosts[name]; dup {
		panic(fmt.Sprintf("simnet: host %q added twice", name))
	}
	h := &Host{net: n, name: name, nextPort: 49152}
	for _, s := range addrs {
		a := netip.MustParseAddr(s)
		if _, dup := n.byAddr[a]; dup {
			panic(fmt.Sprintf("simnet: address %v added twice", a))
		}
		n.byAddr[a] = h
		h.addrs = append(h.addrs, a)
	}
	n.hosts[name] = h
	return h
}

// SetAddrs replaces the host's addresses, as when a device is given a new IP
// by its network. Sockets bound to a removed address stay open but nothing
// reaches them any more, as on a real host.
func (h *Host) SetAddrs(addrs ...string) {
	n := h.net
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range h.addrs {
		delete(n.byAddr, a)
	}
	h.addrs = h.addrs[:0]
	for _, s := range addrs {
		a := netip.MustParseAddr(s)
		if o, dup := n.byAddr[a]; dup && o != h {
			panic(fmt.Sprintf("simnet: address %v belongs to %s", a, o.name))
		}
		n.byAddr[a] = h
		h.addrs = append(h.addrs, a)
	}
}

// SetLink replaces the faults of the host's link.
func (h *Host) SetLink(c LinkConfig) {
	h.net.mu.Lock()
	h.link = c
	h.net.mu.Unlock()
}

// SetDown takes the host's link down (true) or brings it back up (false).
// While it is down, sends from the host fail at once with ENETUNREACH (as
// on Linux when the interface is down) and everything addressed to it is
// lost; streams retransmit until it is up again.
func (h *Host) SetDown(down bool) {
	h.net.mu.Lock()
	h.down = down
	h.net.mu.Unlock()
}

// IsDown reports whether the host's link is down.
func (h *Host) IsDown() bool {
	h.net.mu.Lock()
	defer h.net.mu.Unlock()
	return h.down
}

// sourceAddrLocked picks the host's address to send to dst from.
func (h *Host) sourceAddrLocked(dst netip.Addr) (netip.Addr, bool) {
	fam := sock.FamilyOf(dst)
	for _, a := range h.addrs {
		if sock.FamilyOf(a) == fam {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// hasAddrLocked reports whether a is one of the host's addresses or the
// wildcard address.
func (h *Host) hasAddrLocked(a netip.Addr) bool {
	return a.IsUnspecified() || slices.Contains(h.addrs, a)
}

// ephemeralPortLocked returns a free port in 49152..65535 for proto.
func (h *Host) ephemeralPortLocked(a netip.Addr, stream bool) (uint16, error) {
	for range 16384 {
		p := h.nextPort
		h.nextPort++
		if h.nextPort == 0 {
			h.nextPort = 49152
		}
		if !h.net.portUsedLocked(h, a, p, stream) {
			return p, nil
		}
	}
	return 0, syscall.EADDRINUSE
}

// bindKey names a bound port: an address (or the wildcard) on one host.
type bindKey struct {
	h  *Host
	ap netip.AddrPort
}

func (n *Network) portUsedLocked(h *Host, a netip.Addr, p uint16, stream bool) bool {
	k := bindKey{h, netip.AddrPortFrom(a, p)}
	if stream {
		_, used := n.tcp[k]
		return used || n.tcpUsed[k]
	}
	_, used := n.udp[k]
	return used
}

// transit decides the fate of one datagram from src to dst: the delays of
// the copies that arrive (none when lost). It must hold n.mu.
func (n *Network) transitLocked(from, to *Host) []time.Duration {
	n.stats.Sent++
	if from.down || to.down {
		n.stats.Lost++
		return nil
	}
	copies := 1
	for _, l := range []LinkConfig{from.link, to.link} {
		if l.Loss > 0 && n.rng.Float64() < l.Loss {
			n.stats.Lost++
			return nil
		}
		if l.Duplicate > 0 && n.rng.Float64() < l.Duplicate {
			copies++
			n.stats.Duplicated++
		}
	}
	out := make([]time.Duration, copies)
	for i := range out {
		var d time.Duration
		for _, l := range []LinkConfig{from.link, to.link} {
			d += l.Delay
			if l.Jitter > 0 {
				d += time.Duration(n.rng.Int64N(int64(l.Jitter)))
			}
			if l.Reorder > 0 && n.rng.Float64() < l.Reorder {
				hold := l.ReorderDelay
				if hold == 0 {
					hold = 10*time.Millisecond + 2*l.Delay
				}
				d += hold
				n.stats.Reordered++
			}
		}
		out[i] = d
	}
	return out
}

// after runs f after d, or now when d is zero.
func after(d time.Duration, f func()) {
	if d <= 0 {
		f()
		return
	}
	time.AfterFunc(d, f)
}

func pathMTULocked(a, b *Host) int {
	return min(a.link.mtu(), b.link.mtu())
}
