package simnet

import (
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/sockkit"
)

// maxDatagram is the largest UDP payload over IPv4.
const maxDatagram = 65507

// queueLen is how many datagrams an endpoint holds before it drops, as a
// kernel's receive buffer does.
const queueLen = 512

type packet struct {
	from netip.AddrPort
	data []byte
}

// endpoint is a bound UDP port on a host.
type endpoint struct {
	host  *Host
	local netip.AddrPort
	peer  netip.AddrPort // when valid, only datagrams from peer arrive (guarded by net.mu)

	refused chan struct{} // an ICMP port-unreachable arrived (connected endpoints only)
	done    chan struct{} // closed when unbound

	// The receive queue: a slice that holds nothing while the endpoint
	// is idle (an idle socket of a hundred thousand costs no buffer), at
	// most queueLen datagrams.
	qmu   sync.Mutex
	q     []packet
	ready chan struct{} // holds a token while q may be non-empty
	// notify is the owner's sock.ReadNotifier function, called when q
	// becomes non-empty; nmu is held during the call, so that setNotify
	// waits for one in progress.
	nmu    sync.Mutex
	notify func()
}

// push queues p and reports whether the queue was empty before; false
// ok when the queue is full (the datagram is lost).
func (ep *endpoint) push(p packet) (ok, first bool) {
	ep.qmu.Lock()
	defer ep.qmu.Unlock()
	if len(ep.q) >= queueLen {
		return false, false
	}
	first = len(ep.q) == 0
	ep.q = append(ep.q, p)
	select {
	case ep.ready <- struct{}{}:
	default:
	}
	return true, first
}

// pop takes the oldest queued datagram.
func (ep *endpoint) pop() (packet, bool) {
	ep.qmu.Lock()
	defer ep.qmu.Unlock()
	if len(ep.q) == 0 {
		return packet{}, false
	}
	p := ep.q[0]
	ep.q[0] = packet{}
	ep.q = ep.q[1:]
	if len(ep.q) == 0 {
		ep.q = nil // the array goes with the burst
	} else {
		select { // another reader may wait for the rest
		case ep.ready <- struct{}{}:
		default:
		}
	}
	return p, true
}

// queued reports whether a datagram waits.
func (ep *endpoint) queued() bool {
	ep.qmu.Lock()
	defer ep.qmu.Unlock()
	return len(ep.q) > 0
}

// setNotify installs the owner's notification function (nil: none); it
// returns once no call of the old one is in progress, and calls the new
// one at once if a datagram already waits.
func (ep *endpoint) setNotify(f func()) {
	ep.nmu.Lock()
	ep.notify = f
	ep.nmu.Unlock()
	if f != nil && ep.queued() {
		ep.fire()
	}
}

// fire calls the notification function, if any.
func (ep *endpoint) fire() {
	ep.nmu.Lock()
	defer ep.nmu.Unlock()
	if ep.notify != nil {
		ep.notify()
	}
}

// bindUDPLocked registers an endpoint at a on h; port 0 picks one.
func (n *Network) bindUDPLocked(h *Host, a netip.AddrPort) (*endpoint, error) {
	if !h.hasAddrLocked(a.Addr()) {
		return nil, sockkit.Mark(sock.ErrAddrNotAvail, syscall.EADDRNOTAVAIL)
	}
	if a.Port() == 0 {
		p, err := h.ephemeralPortLocked(a.Addr(), false)
		if err != nil {
			return nil, err
		}
		a = netip.AddrPortFrom(a.Addr(), p)
	} else if _, used := n.udp[bindKey{h, a}]; used {
		return nil, syscall.EADDRINUSE
	}
	ep := &endpoint{
		host:    h,
		local:   a,
		ready:   make(chan struct{}, 1),
		refused: make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	n.udp[bindKey{h, a}] = ep
	return ep, nil
}

// unbind removes the endpoint; blocked readers see done closed.
func (n *Network) unbind(ep *endpoint) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if k := (bindKey{ep.host, ep.local}); n.udp[k] == ep {
		delete(n.udp, k)
		close(ep.done)
	}
}

// sendUDP sends one datagram from ep to dst through the links.
func (n *Network) sendUDP(ep *endpoint, dst netip.AddrPort, b []byte) error {
	if len(b) > maxDatagram {
		return sockkit.Mark(sock.ErrMsgSize, syscall.EMSGSIZE)
	}
	n.mu.Lock()
	if isClosed(ep.done) {
		n.mu.Unlock()
		return net.ErrClosed
	}
	h := ep.host
	if h.down {
		n.mu.Unlock()
		return syscall.ENETUNREACH
	}
	src := ep.local
	if src.Addr().IsUnspecified() {
		a, ok := h.sourceAddrLocked(dst.Addr())
		if !ok {
			n.mu.Unlock()
			return syscall.ENETUNREACH
		}
		src = netip.AddrPortFrom(a, src.Port())
	}
	to := n.byAddr[dst.Addr()]
	if to == nil {
		n.stats.Sent++
		n.stats.Lost++ // no such host: a black hole
		n.mu.Unlock()
		return nil
	}
	delays := n.transitLocked(h, to)
	n.mu.Unlock()
	if len(delays) == 0 {
		return nil
	}
	data := append([]byte(nil), b...)
	for _, d := range delays {
		after(d, func() { n.deliverUDP(src, dst, data, ep) })
	}
	return nil
}

// deliverUDP hands a datagram that crossed the links to the endpoint bound
// at dst, or bounces an ICMP port-unreachable to a connected sender.
func (n *Network) deliverUDP(src, dst netip.AddrPort, data []byte, sender *endpoint) {
	if ep := n.queueUDP(src, dst, data, sender); ep != nil {
		ep.fire() // with the network unlocked
	}
}

// queueUDP queues a datagram at the endpoint bound at dst and returns the
// endpoint if its queue was empty before.
func (n *Network) queueUDP(src, dst netip.AddrPort, data []byte, sender *endpoint) *endpoint {
	n.mu.Lock()
	defer n.mu.Unlock()
	h := n.byAddr[dst.Addr()]
	if h == nil || h.down {
		n.stats.Lost++
		return nil
	}
	ep := n.udp[bindKey{h, dst}]
	if ep == nil {
		ep = n.udp[bindKey{h, netip.AddrPortFrom(unspecified(dst.Addr()), dst.Port())}]
	}
	if ep == nil {
		n.stats.Refused++
		if sender.peer == dst && !isClosed(sender.done) {
			select {
			case sender.refused <- struct{}{}:
			default:
			}
		}
		return nil
	}
	if ep.peer.IsValid() && ep.peer != src {
		return nil // a connected socket ignores other sources
	}
	ok, first := ep.push(packet{from: src, data: data})
	if !ok {
		n.stats.Lost++ // receive queue full
		return nil
	}
	n.stats.Delivered++
	if first {
		return ep
	}
	return nil
}

func unspecified(a netip.Addr) netip.Addr {
	if sock.FamilyOf(a) == sock.IPv4 {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// PacketConn is a UDP endpoint on a simulated host, as a net.PacketConn: the
// server side of tests, which a test programs directly or hands to any
// server written against net.PacketConn.
type PacketConn struct {
	net    *Network
	ep     *endpoint
	rd, wd *deadline
	once   sync.Once
}

var _ net.PacketConn = (*PacketConn)(nil)

// ListenPacket binds a UDP endpoint on the host. network is "udp", "udp4" or
// "udp6"; address is "host:port" with an IP literal of the host, or an empty
// host for the wildcard address, and port 0 for an ephemeral port.
func (h *Host) ListenPacket(network, address string) (*PacketConn, error) {
	a, err := listenAddr(network, "udp", address)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	h.net.mu.Lock()
	ep, err := h.net.bindUDPLocked(h, a)
	h.net.mu.Unlock()
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: net.UDPAddrFromAddrPort(a), Err: err}
	}
	return &PacketConn{net: h.net, ep: ep, rd: newDeadline(), wd: newDeadline()}, nil
}

// listenAddr parses a listen address for base ("udp" or "tcp").
func listenAddr(network, base, address string) (netip.AddrPort, error) {
	if network != base && network != base+"4" && network != base+"6" {
		return netip.AddrPort{}, net.UnknownNetworkError(network)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := sockkit.ParsePort(port, true)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if host == "" {
		if network == base+"6" {
			return netip.AddrPortFrom(netip.IPv6Unspecified(), p), nil
		}
		return netip.AddrPortFrom(netip.IPv4Unspecified(), p), nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(a.Unmap(), p), nil
}

// ReadFrom implements net.PacketConn. A datagram longer than b is truncated,
// as *net.UDPConn's ReadFrom does.
func (c *PacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		if p, ok := c.ep.pop(); ok { // queued data first, even past the deadline
			return copy(b, p.data), net.UDPAddrFromAddrPort(p.from), nil
		}
		select {
		case <-c.ep.ready:
		case <-c.ep.done:
			return 0, nil, c.opError("read", net.ErrClosed)
		case <-c.rd.wait():
			if p, ok := c.ep.pop(); ok {
				return copy(b, p.data), net.UDPAddrFromAddrPort(p.from), nil
			}
			return 0, nil, c.opError("read", sock.ErrTimeout)
		}
	}
}

// WriteTo implements net.PacketConn; addr must be a *net.UDPAddr.
func (c *PacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, c.opError("write", &net.AddrError{Err: "not a UDP address", Addr: addr.String()})
	}
	if isClosed(c.wd.wait()) {
		return 0, c.opError("write", sock.ErrTimeout)
	}
	ap := ua.AddrPort()
	if err := c.net.sendUDP(c.ep, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), b); err != nil {
		return 0, c.opError("write", err)
	}
	return len(b), nil
}

// Close implements net.PacketConn.
func (c *PacketConn) Close() error {
	c.once.Do(func() { c.net.unbind(c.ep) })
	return nil
}

// LocalAddr implements net.PacketConn.
func (c *PacketConn) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(c.ep.local) }

// SetDeadline implements net.PacketConn.
func (c *PacketConn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

// SetReadDeadline implements net.PacketConn.
func (c *PacketConn) SetReadDeadline(t time.Time) error { c.rd.set(t); return nil }

// SetWriteDeadline implements net.PacketConn.
func (c *PacketConn) SetWriteDeadline(t time.Time) error { c.wd.set(t); return nil }

func (c *PacketConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "udp", Addr: c.LocalAddr(), Err: err}
}
