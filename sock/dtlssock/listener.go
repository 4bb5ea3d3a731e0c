package dtlssock

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/transport/v5/deadline"

	"github.com/tether-iot/tether/sock"
)

// Record content types the listener routes by (RFC 6347, RFC 9146).
const (
	contentCCS       = 20
	contentHandshake = 22
	contentAppData   = 23
	contentCID       = 25 // tls12_cid: the record carries a Connection ID
	recordHeaderLen  = 11 // type, version, epoch, sequence number: before the CID
)

// handshakeTimeout bounds a server handshake.
const handshakeTimeout = 30 * time.Second

// Queue sizes: a connection holds this many datagrams its reader has not
// taken yet, and the listener runs this many handshakes or holds this many
// connections Accept has not taken; beyond that datagrams are dropped, as a
// full socket buffer drops them (a client sends its hello again).
const (
	connQueue   = 512
	acceptQueue = 16
)

// Listen serves DTLS on pc, any net.PacketConn: a UDP socket, a simulated
// network's (sock/simnet), a user's own. pion's own listener needs a
// *net.UDPConn; this one does not, so servers in simulations speak DTLS
// too, and it does not lose a client's first records (below).
//
// Datagrams are told apart by the peer's address and, once the handshake
// has agreed a Connection ID (cfg.ConnectionIDs set), by that ID, so
// a client that comes back from a new address or port keeps its session
// (RFC 9146); only a handshake record opens a new connection. A client
// that starts a new handshake from the address of an established session
// (it restarted, on the same port) gets a new connection (RFC 6347 section
// 4.2.8); the old session keeps its address until the client's Finished
// shows it holds the new keys, and ends once the new handshake is done
// unless a Connection ID still reaches it. Accept
// returns the server side of each once its handshake has completed (bounded
// by 30 s); a failed handshake is dropped. Application records that arrive
// before the server has finished its handshake wait for it: pion marks the
// handshake complete only after it sent its last flight and drops early
// application data meanwhile, which a client that writes at once (as it
// may) would lose. Close stops the listener, closes pc, ends every
// connection's reads and waits for the handshakes under way.
func Listen(pc net.PacketConn, cfg *Config) (net.Listener, error) {
	if cfg == nil {
		return nil, errors.New("dtlssock: Listen needs a Config")
	}
	l := &listener{
		pc:     pc,
		cfg:    *cfg,
		ready:  make(chan *dtls.Conn, acceptQueue),
		read:   make(chan struct{}),
		byAddr: map[string]*serverConn{},
		byCID:  map[string]*serverConn{},
		conns:  map[*serverConn]struct{}{},
	}
	if cfg.ConnectionIDs {
		l.cidLen = cidLen
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	go l.serve()
	return l, nil
}

type listener struct {
	pc     net.PacketConn
	cfg    Config
	cidLen int             // the length of the Connection IDs asked for; 0 for none
	ready  chan *dtls.Conn // handshaken, for Accept
	ctx    context.Context // canceled by Close, under mu
	cancel context.CancelFunc
	read   chan struct{}  // closed when serve returns
	hs     sync.WaitGroup // handshakes under way

	mu      sync.Mutex
	pending int // handshakes under way
	byAddr  map[string]*serverConn
	byCID   map[string]*serverConn
	conns   map[*serverConn]struct{} // every open connection
}

// serve routes every datagram on pc to its connection, until pc fails.
func (l *listener) serve() {
	defer close(l.read)
	buf := make([]byte, 64<<10)
	for {
		n, addr, err := l.pc.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.stop()
			return
		}
		if c := l.route(buf[:n], addr); c != nil {
			c.deliver(append([]byte(nil), buf[:n]...), addr)
		}
	}
}

// route finds the connection a datagram belongs to, or opens one for a
// handshake from a new peer; nil drops the datagram.
func (l *listener) route(b []byte, addr net.Addr) *serverConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx.Err() != nil || len(b) == 0 {
		return nil
	}
	if b[0] == contentCID && l.cidLen > 0 && len(b) >= recordHeaderLen+l.cidLen {
		if c, ok := l.byCID[string(b[recordHeaderLen:recordHeaderLen+l.cidLen])]; ok {
			return c // pion authenticates the record and then follows the new address
		}
	}
	key := addr.String()
	old, ok := l.byAddr[key]
	switch {
	case ok && old.next != nil && (b[0] == contentHandshake || b[0] == contentCCS || epoch0(b)):
		if b[0] == contentHandshake && !epoch0(b) {
			// The client's Finished: it holds the new keys, so it has shown
			// it is reachable, and the address is the new session's now.
			l.byAddr[key] = old.next
		}
		return old.next // the new handshake from this address
	case ok && (old.next != nil || !isClosed(old.established) || !isNewClientHello(b)):
		return old
	case !ok && b[0] != contentHandshake:
		return nil
	case l.pending >= acceptQueue:
		return nil
	}
	c := &serverConn{l: l, key: key, first: addr, in: make(chan datagram, connQueue),
		done: make(chan struct{}), established: make(chan struct{}), rd: deadline.New()}
	if ok {
		c.prev, old.next = old, c // old keeps the address until c is up
	} else {
		l.byAddr[key] = c
	}
	l.conns[c] = struct{}{}
	l.pending++
	l.hs.Add(1)
	go l.handshake(c)
	return c
}

// epoch0 reports whether a record is unprotected: the handshake's first
// flights, and its alerts.
func epoch0(b []byte) bool { return len(b) >= 5 && b[3] == 0 && b[4] == 0 }

// isNewClientHello reports whether a datagram starts with the first
// ClientHello of a handshake: epoch 0, handshake type 1, message sequence 0.
func isNewClientHello(b []byte) bool {
	const hdr = recordHeaderLen + 2 // and the record's length
	return len(b) >= hdr+12 && b[0] == contentHandshake && epoch0(b) &&
		b[hdr] == 1 && b[hdr+4] == 0 && b[hdr+5] == 0
}

// promote makes c, whose handshake completed, the connection for its
// address. The session it replaces ends unless a Connection ID still
// reaches it.
func (l *listener) promote(c *serverConn) {
	l.mu.Lock()
	old := c.prev
	if old == nil {
		l.mu.Unlock()
		return
	}
	c.prev, old.next = nil, nil
	if l.byAddr[c.key] == old {
		l.byAddr[c.key] = c
	}
	orphan := len(old.cids) == 0
	l.mu.Unlock()
	if orphan {
		old.Close()
	}
}

// handshake runs the server's side of a new connection's handshake and
// hands the connection to Accept.
func (l *listener) handshake(c *serverConn) {
	defer l.hs.Done()
	defer func() {
		l.mu.Lock()
		l.pending--
		l.mu.Unlock()
	}()
	gen := dtls.RandomCIDGenerator(cidLen)
	newCID := func() []byte {
		// The ID this server asks the client to send is the routing key.
		id := gen()
		l.mu.Lock()
		if l.ctx.Err() == nil {
			l.byCID[string(id)] = c
			c.cids = append(c.cids, string(id))
		}
		l.mu.Unlock()
		return id
	}
	conn, err := dtls.ServerWithOptions(c, c.first, l.cfg.serverOptions(newCID)...)
	if err != nil {
		c.Close()
		return
	}
	ctx, cancel := context.WithTimeout(l.ctx, handshakeTimeout) // Close cuts it short
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		conn.Close()
		return
	}
	close(c.established)
	l.promote(c)
	select {
	case l.ready <- conn:
	case <-l.ctx.Done():
		conn.Close()
	}
}

// Accept implements net.Listener: the next connection whose handshake
// completed.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener: pc is closed and every connection's reads
// end with net.ErrClosed.
func (l *listener) Close() error {
	err := l.stop()
	<-l.read
	return err
}

func (l *listener) stop() error {
	l.mu.Lock()
	if l.ctx.Err() != nil {
		l.mu.Unlock()
		return nil
	}
	conns := make([]*serverConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.byAddr, l.byCID, l.conns = map[string]*serverConn{}, map[string]*serverConn{}, map[*serverConn]struct{}{}
	l.cancel()
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	err := l.pc.Close()
	l.hs.Wait()
	for {
		select {
		case c := <-l.ready: // handshaken, never accepted
			c.Close()
		default:
			return err
		}
	}
}

// Addr implements net.Listener.
func (l *listener) Addr() net.Addr { return l.pc.LocalAddr() }

// forget removes c's routes.
func (l *listener) forget(c *serverConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, c)
	if l.byAddr[c.key] == c {
		switch {
		case c.next != nil:
			l.byAddr[c.key], c.next.prev = c.next, nil // the new handshake inherits the address
		case c.prev != nil && c.prev.next == c:
			l.byAddr[c.key] = c.prev // a new handshake failed after its Finished: back to the old
		default:
			delete(l.byAddr, c.key)
		}
	}
	if p := c.prev; p != nil && p.next == c {
		p.next = nil // a new handshake that failed
	}
	c.next, c.prev = nil, nil
	for _, id := range c.cids {
		if l.byCID[id] == c {
			delete(l.byCID, id)
		}
	}
}

type datagram struct {
	b    []byte
	addr net.Addr
}

// serverConn is one peer's share of the listener's net.PacketConn: the
// datagrams routed to it in, its writes out through pc.
type serverConn struct {
	l     *listener
	key   string      // first, as a map key
	first net.Addr    // the peer's address when it said hello
	cids  []string    // guarded by l.mu
	next  *serverConn // guarded by l.mu: a new handshake from the same address
	prev  *serverConn // guarded by l.mu: the session next replaces
	in    chan datagram
	rd    *deadline.Deadline

	established chan struct{} // closed when the server's handshake completed
	held        []datagram    // application records that came before that

	closeOnce sync.Once
	done      chan struct{}
}

func (c *serverConn) deliver(b []byte, addr net.Addr) {
	select {
	case c.in <- datagram{b, addr}:
	default: // the reader is behind: dropped, as by a full socket buffer
	}
}

// ReadFrom implements net.PacketConn for pion's one reader goroutine.
func (c *serverConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		up := isClosed(c.established)
		if up && len(c.held) > 0 {
			d := c.held[0]
			c.held = c.held[1:]
			return copy(b, d.b), d.addr, nil
		}
		wait := c.established
		if up {
			wait = nil // nothing left to wait for
		}
		select {
		case d := <-c.in:
			if !up && len(d.b) > 0 && (d.b[0] == contentAppData || d.b[0] == contentCID) {
				if len(c.held) < connQueue {
					c.held = append(c.held, d)
				}
				continue
			}
			return copy(b, d.b), d.addr, nil
		case <-wait:
		case <-c.done:
			return 0, nil, net.ErrClosed
		case <-c.rd.Done():
			return 0, nil, &net.OpError{Op: "read", Net: "udp", Err: sock.ErrTimeout}
		}
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (c *serverConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	select {
	case <-c.done:
		return 0, net.ErrClosed
	default:
	}
	return c.l.pc.WriteTo(b, addr)
}

func (c *serverConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.done)
		c.l.forget(c)
	})
	return nil
}

func (c *serverConn) LocalAddr() net.Addr                { return c.l.pc.LocalAddr() }
func (c *serverConn) SetDeadline(t time.Time) error      { return c.SetReadDeadline(t) }
func (c *serverConn) SetReadDeadline(t time.Time) error  { c.rd.Set(t); return nil }
func (c *serverConn) SetWriteDeadline(t time.Time) error { return nil }
