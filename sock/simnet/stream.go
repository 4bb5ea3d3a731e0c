package simnet

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/sockkit"
)

// Streams (TCP) are modelled at the level an application sees: bytes arrive
// in order, exactly once. A segment the links lose, or that meets a link that
// is down, is retransmitted after a timeout that starts at 200ms (at least
// twice the path delay) and doubles up to maxRTO, so a stream stalls while a
// link is down and catches up once it is back, as TCP does.
const (
	minRTO = 200 * time.Millisecond
	maxRTO = 4 * time.Second
	// window is the most a segment carries; writes queued behind one in
	// flight are coalesced into the next.
	window = 64 << 10
)

// half is one direction of a connection: the bytes in flight and the receive
// buffer at the far end.
type half struct {
	from, to *Host

	mu      sync.Mutex
	queue   []byte // written, not yet sent
	fin     bool   // the writer closed after queue
	busy    bool   // a segment is in flight
	rto     time.Duration
	buf     []byte // arrived, not yet read
	eof     bool   // the FIN arrived
	readers chan struct{}
}

func newHalf(from, to *Host) *half {
	return &half{from: from, to: to, readers: make(chan struct{}, 1)}
}

// write queues b (or, with fin, the end of the stream) for sending.
func (h *half) write(n *Network, b []byte, fin bool) {
	h.mu.Lock()
	h.queue = append(h.queue, b...)
	h.fin = h.fin || fin
	start := !h.busy
	h.busy = true
	h.mu.Unlock()
	if start {
		h.send(n)
	}
}

// send puts the head of the queue on the wire, or ends the pump.
func (h *half) send(n *Network) {
	h.mu.Lock()
	seg := h.queue[:min(len(h.queue), window)]
	fin := h.fin && len(seg) == len(h.queue)
	if len(seg) == 0 && !fin {
		h.busy = false
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()

	n.mu.Lock()
	delays := n.transitLocked(h.from, h.to)
	var d time.Duration
	if len(delays) > 0 {
		d = delays[0] // duplicates are TCP's to discard
		n.stats.Delivered++
	}
	n.mu.Unlock()

	if len(delays) == 0 {
		h.mu.Lock()
		if h.rto == 0 {
			h.rto = max(minRTO, 2*d)
		} else {
			h.rto = min(2*h.rto, maxRTO)
		}
		rto := h.rto
		h.mu.Unlock()
		time.AfterFunc(rto, func() { h.send(n) })
		return
	}
	after(d, func() {
		h.mu.Lock()
		h.buf = append(h.buf, seg...)
		h.queue = h.queue[len(seg):]
		if fin {
			h.eof = true
			h.fin = false
		}
		h.rto = 0
		h.mu.Unlock()
		select {
		case h.readers <- struct{}{}:
		default:
		}
		h.send(n)
	})
}

// read copies arrived bytes into b, waiting until there are some, the
// stream ends (0, io.EOF), or one of the channels closes (errStop and the
// channel's error).
func (h *half) read(b []byte, stops ...stop) (int, error) {
	for {
		h.mu.Lock()
		if len(h.buf) > 0 {
			n := copy(b, h.buf)
			h.buf = h.buf[n:]
			more := len(h.buf) > 0
			h.mu.Unlock()
			if more {
				select {
				case h.readers <- struct{}{}:
				default:
				}
			}
			return n, nil
		}
		if h.eof {
			h.mu.Unlock()
			return 0, io.EOF
		}
		h.mu.Unlock()
		if err := wait(h.readers, stops...); err != nil {
			return 0, err
		}
	}
}

// stop is a channel that ends a wait with an error when it closes.
type stop struct {
	c   <-chan struct{}
	err error
}

// wait blocks until ready has a value or a stop channel closes.
func wait(ready <-chan struct{}, stops ...stop) error {
	var s [3]stop
	copy(s[:], stops)
	select {
	case <-ready:
		return nil
	case <-s[0].c:
		return s[0].err
	case <-s[1].c:
		return s[1].err
	case <-s[2].c:
		return s[2].err
	}
}

// stream is one end of a simulated TCP connection.
type stream struct {
	net           *Network
	host          *Host // the end's own host
	local, remote netip.AddrPort
	in, out       *half
	closed        chan struct{}
	once          sync.Once
}

func (s *stream) close() {
	s.once.Do(func() {
		close(s.closed)
		s.out.write(s.net, nil, true)
		s.net.mu.Lock()
		delete(s.net.tcpUsed, bindKey{s.host, s.local})
		s.net.mu.Unlock()
	})
}

// dialTCP opens a connection from h to dst: a SYN that crosses the links
// (retried at 1s, 2s, 4s... while lost, as Linux does), refused when no
// listener is bound at dst, bounded by ctx.
func (n *Network) dialTCP(ctx context.Context, h *Host, local netip.AddrPort, dst netip.AddrPort) (*stream, error) {
	rto := time.Second
	for {
		n.mu.Lock()
		if h.down {
			n.mu.Unlock()
			return nil, syscall.ENETUNREACH
		}
		to := n.byAddr[dst.Addr()]
		var delays []time.Duration
		if to != nil {
			delays = n.transitLocked(h, to)
		}
		n.mu.Unlock()
		if len(delays) == 0 {
			if err := sleep(ctx, rto); err != nil {
				return nil, err
			}
			rto *= 2
			continue
		}
		if err := sleep(ctx, 2*delays[0]); err != nil { // SYN there, answer back
			return nil, err
		}
		return n.establish(h, to, local, dst)
	}
}

// establish creates both ends once a SYN reached dst.
func (n *Network) establish(h, to *Host, local, dst netip.AddrPort) (*stream, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ln := n.tcp[bindKey{to, dst}]
	if ln == nil {
		ln = n.tcp[bindKey{to, netip.AddrPortFrom(unspecified(dst.Addr()), dst.Port())}]
	}
	if ln == nil || isClosed(ln.done) {
		n.stats.Refused++
		return nil, syscall.ECONNREFUSED
	}
	if local.Addr().IsUnspecified() {
		a, ok := h.sourceAddrLocked(dst.Addr())
		if !ok {
			return nil, syscall.ENETUNREACH
		}
		local = netip.AddrPortFrom(a, local.Port())
	}
	if local.Port() == 0 {
		p, err := h.ephemeralPortLocked(local.Addr(), true)
		if err != nil {
			return nil, err
		}
		local = netip.AddrPortFrom(local.Addr(), p)
	}
	if n.tcpUsed[bindKey{h, local}] {
		return nil, syscall.EADDRINUSE
	}
	up, down := newHalf(h, to), newHalf(to, h)
	client := &stream{net: n, host: h, local: local, remote: dst, in: down, out: up, closed: make(chan struct{})}
	server := &stream{net: n, host: to, local: dst, remote: local, in: up, out: down, closed: make(chan struct{})}
	select {
	case ln.accept <- server:
	default:
		return nil, syscall.ECONNREFUSED // backlog full
	}
	n.tcpUsed[bindKey{h, local}] = true
	return client, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Listener is a listening TCP port on a simulated host, as a net.Listener.
type Listener struct {
	net    *Network
	host   *Host
	addr   netip.AddrPort
	accept chan *stream
	done   chan struct{}
	once   sync.Once
}

var _ net.Listener = (*Listener)(nil)

// Listen binds a listening TCP port on the host; network and address are as
// for ListenPacket.
func (h *Host) Listen(network, address string) (*Listener, error) {
	a, err := listenAddr(network, "tcp", address)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	n := h.net
	n.mu.Lock()
	defer n.mu.Unlock()
	ln, err := n.listenLocked(h, a)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: net.TCPAddrFromAddrPort(a), Err: err}
	}
	return ln, nil
}

func (n *Network) listenLocked(h *Host, a netip.AddrPort) (*Listener, error) {
	if !h.hasAddrLocked(a.Addr()) {
		return nil, sockkit.Mark(sock.ErrAddrNotAvail, syscall.EADDRNOTAVAIL)
	}
	if a.Port() == 0 {
		p, err := h.ephemeralPortLocked(a.Addr(), true)
		if err != nil {
			return nil, err
		}
		a = netip.AddrPortFrom(a.Addr(), p)
	} else if _, used := n.tcp[bindKey{h, a}]; used {
		return nil, syscall.EADDRINUSE
	}
	ln := &Listener{net: n, host: h, addr: a, accept: make(chan *stream, 128), done: make(chan struct{})}
	n.tcp[bindKey{h, a}] = ln
	return ln, nil
}

// Accept implements net.Listener.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case s := <-l.accept:
		return &Conn{s: s, rd: newDeadline(), wd: newDeadline()}, nil
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
	}
}

// Close implements net.Listener; connections it accepted stay open.
func (l *Listener) Close() error {
	l.once.Do(func() {
		l.net.mu.Lock()
		if k := (bindKey{l.host, l.addr}); l.net.tcp[k] == l {
			delete(l.net.tcp, k)
		}
		l.net.mu.Unlock()
		close(l.done)
		for {
			select {
			case s := <-l.accept:
				s.close()
			default:
				return
			}
		}
	})
	return nil
}

// Addr implements net.Listener.
func (l *Listener) Addr() net.Addr { return net.TCPAddrFromAddrPort(l.addr) }

// Conn is an accepted connection on a simulated host, as a net.Conn.
type Conn struct {
	s      *stream
	rd, wd *deadline
}

var _ net.Conn = (*Conn)(nil)

// Read implements net.Conn; the peer's close reads as io.EOF.
func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.s.in.read(b, stop{c.s.closed, net.ErrClosed}, stop{c.rd.wait(), sock.ErrTimeout})
	if err != nil && err != io.EOF {
		err = c.opError("read", err)
	}
	return n, err
}

// Write implements net.Conn. Writes never block: the simulated send buffer
// has no limit.
func (c *Conn) Write(b []byte) (int, error) {
	switch {
	case isClosed(c.s.closed):
		return 0, c.opError("write", net.ErrClosed)
	case isClosed(c.wd.wait()):
		return 0, c.opError("write", sock.ErrTimeout)
	}
	c.s.out.write(c.s.net, b, false)
	return len(b), nil
}

// Close implements net.Conn: the peer reads the rest, then io.EOF.
func (c *Conn) Close() error { c.s.close(); return nil }

// LocalAddr implements net.Conn.
func (c *Conn) LocalAddr() net.Addr { return net.TCPAddrFromAddrPort(c.s.local) }

// RemoteAddr implements net.Conn.
func (c *Conn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.s.remote) }

// SetDeadline implements net.Conn.
func (c *Conn) SetDeadline(t time.Time) error { c.rd.set(t); c.wd.set(t); return nil }

// SetReadDeadline implements net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error { c.rd.set(t); return nil }

// SetWriteDeadline implements net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error { c.wd.set(t); return nil }

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
