package dtlssock

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"maps"
	"net"
	"sync"
	"sync/atomic"
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
// taken yet once its handshake is done (before that, Limits.HeldRecords),
// and the listener holds this many connections Accept has not taken;
// beyond that datagrams are dropped, as a full socket buffer drops them (a
// client sends them again).
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
// (RFC 9146); only a ClientHello opens a new connection. A client
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
//
// cfg.Limits bound the handshakes in progress, the records they hold, the
// live sessions and the store of sessions to resume (see Limits): a flood
// of ClientHellos from forged addresses displaces only handshakes whose
// source has not shown it receives, and an idle session leaves memory,
// to be resumed by its ID.
func Listen(pc net.PacketConn, cfg *Config) (net.Listener, error) {
	if cfg == nil {
		return nil, errors.New("dtlssock: Listen needs a Config")
	}
	lim := cfg.Limits.withDefaults()
	l := &listener{
		pc:       pc,
		cfg:      *cfg,
		lim:      lim,
		sessions: newServerSessions(lim.StoredSessions, lim.SessionLifetime),
		ready:    make(chan *dtls.Conn, acceptQueue),
		read:     make(chan struct{}),
		byAddr:   map[string]*serverConn{},
		byCID:    map[string]*serverConn{},
		conns:    map[*serverConn]struct{}{},
		perIP:    map[string]int{},
	}
	if cfg.ConnectionIDs {
		l.cidLen = cidLen
	}
	if rb, ok := pc.(interface{ SetReadBuffer(int) error }); ok && lim.ReadBuffer > 0 {
		rb.SetReadBuffer(lim.ReadBuffer) // best effort: the system may cap it
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	go l.serve()
	return l, nil
}

type listener struct {
	pc       net.PacketConn
	cfg      Config
	lim      Limits          // cfg.Limits with the defaults filled in
	sessions *serverSessions // for resumption by session ID
	cidLen   int             // the length of the Connection IDs asked for; 0 for none
	ready    chan *dtls.Conn // handshaken, for Accept
	ctx      context.Context // canceled by Close, under mu
	cancel   context.CancelFunc
	read     chan struct{}  // closed when serve returns
	hs       sync.WaitGroup // handshake goroutines
	held     atomic.Int64   // bytes held by connections whose handshake is not done

	mu         sync.Mutex
	handshakes int            // handshakes in progress
	running    int            // handshake goroutines, those of displaced handshakes still ending among them
	perIP      map[string]int // handshakes in progress by source IP address
	unproven   list.List      // of *serverConn: the handshakes in progress not proven yet, oldest first
	live       list.List      // of *serverConn: the established sessions, most recently heard from first
	byAddr     map[string]*serverConn
	byCID      map[string]*serverConn
	conns      map[*serverConn]struct{} // every open connection
	peak       int                      // the most connections since the maps were last made anew
	stats      listenerStats
}

// ListenerStats counts what a listener made by Listen did with its limits
// (Config.Limits) and its session store, for an operator's metrics.
type ListenerStats struct {
	Displaced int // unproven handshakes ended by a newer ClientHello
	Expired   int // unproven handshakes ended by UnprovenTimeout
	Refused   int // ClientHellos dropped: the caps were full of proven handshakes
	Idled     int // sessions closed by IdleTimeout
	Evicted   int // sessions closed by MaxSessions
	Resumed   int // handshakes that resumed a stored session (abbreviated)
	Live      int // established sessions held now
}

// Counts returns the counts of ln, a listener Listen made; false for any
// other.
func Counts(ln net.Listener) (ListenerStats, bool) {
	l, ok := ln.(*listener)
	if !ok {
		return ListenerStats{}, false
	}
	l.mu.Lock()
	st := ListenerStats{Displaced: l.stats.displaced, Expired: l.stats.expired, Refused: l.stats.refused,
		Idled: l.stats.idled, Evicted: l.stats.evicted, Live: l.live.Len()}
	l.mu.Unlock()
	l.sessions.mu.Lock()
	st.Resumed = l.sessions.resumed
	l.sessions.mu.Unlock()
	return st, true
}

// listenerStats count what the limits did, for the tests and the README's
// figures.
type listenerStats struct {
	displaced int // unproven handshakes ended by a newer ClientHello
	expired   int // unproven handshakes ended by UnprovenTimeout
	refused   int // ClientHellos dropped: the caps were full of proven handshakes
	idled     int // sessions closed by IdleTimeout
	evicted   int // sessions closed by MaxSessions
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
			c.deliver(buf[:n], addr)
		}
	}
}

// route finds the connection a datagram belongs to, or opens one for a
// ClientHello from a new peer; nil drops the datagram.
func (l *listener) route(b []byte, addr net.Addr) *serverConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx.Err() != nil || len(b) == 0 {
		return nil
	}
	if b[0] == contentCID && l.cidLen > 0 && len(b) >= recordHeaderLen+l.cidLen {
		if c, ok := l.byCID[string(b[recordHeaderLen:recordHeaderLen+l.cidLen])]; ok {
			l.heard(c, b)
			return c // pion authenticates the record and then follows the new address
		}
	}
	key := addr.String()
	old, ok := l.byAddr[key]
	switch {
	case ok && old.next != nil && (b[0] == contentHandshake || b[0] == contentCCS || epoch0(b)):
		if hasFinished(b) {
			// The client's Finished: it holds the new keys, so it has shown
			// it is reachable, and the address is the new session's now.
			// (In an abbreviated handshake it follows the client's
			// ChangeCipherSpec in the same datagram, and application data
			// follows at once, before the server's handshake is done.)
			l.byAddr[key] = old.next
		}
		l.heard(old.next, b)
		return old.next // the new handshake from this address
	case ok && (old.next != nil || !isClosed(old.established) || !isNewClientHello(b)):
		l.heard(old, b)
		return old
	case !ok && !isClientHello(b):
		return nil
	}
	ip := ipOf(addr)
	if l.running >= 2*l.lim.MaxHandshakes || !l.makeRoom(ip) {
		l.stats.refused++
		return nil
	}
	c := &serverConn{l: l, key: key, ip: ip, first: addr, signal: make(chan struct{}, 1),
		done: make(chan struct{}), established: make(chan struct{}), rd: deadline.New()}
	if ok {
		c.prev, old.next = old, c // old keeps the address until c is up
	} else {
		l.byAddr[key] = c
	}
	l.conns[c] = struct{}{}
	l.peak = max(l.peak, len(l.conns))
	l.handshakes++
	l.perIP[ip]++
	c.inProgress = true
	c.unproven = l.unproven.PushBack(c)
	c.timer = time.AfterFunc(l.lim.UnprovenTimeout, c.expire)
	// Bounded by handshakeTimeout; Close, a displacement or the expiry cut
	// it short.
	c.hctx, c.hcancel = context.WithTimeout(l.ctx, handshakeTimeout)
	l.hs.Add(1)
	l.running++
	go l.handshake(c)
	return c
}

// A new ClientHello is dropped, too, while the goroutines of twice
// MaxHandshakes handshakes run: displaced ones end asynchronously, and a
// server that falls behind a flood must not pile them up.
//
// makeRoom makes room for a new handshake from ip under the caps, by
// ending the oldest unproven handshake (from ip, for the per-address cap)
// where a cap is reached; false if a cap is full of proven handshakes.
func (l *listener) makeRoom(ip string) bool {
	if l.perIP[ip] >= l.lim.MaxHandshakesPerIP {
		v := l.oldestUnproven(ip)
		if v == nil {
			return false
		}
		l.stats.displaced++
		v.closeLocked()
	}
	if l.handshakes >= l.lim.MaxHandshakes {
		v := l.oldestUnproven("")
		if v == nil {
			return false
		}
		l.stats.displaced++
		v.closeLocked()
	}
	return true
}

// oldestUnproven returns the oldest unproven handshake in progress from
// ip, or from anywhere if ip is "", or nil.
func (l *listener) oldestUnproven(ip string) *serverConn {
	for e := l.unproven.Front(); e != nil; e = e.Next() {
		if c := e.Value.(*serverConn); ip == "" || c.ip == ip {
			return c
		}
	}
	return nil
}

// heard notes that c received datagram b: a session's idle time starts
// again; a handshake whose ClientHello returns the cookie of pion's
// HelloVerifyRequest is proven, its source shown to receive what is sent
// to it, and no unproven handshake displaces it from then on.
func (l *listener) heard(c *serverConn, b []byte) {
	if c.live != nil {
		c.last = time.Now()
		l.live.MoveToFront(c.live)
	}
	if c.unproven == nil || len(c.cookie) == 0 {
		return
	}
	if ck, ok := helloCookie(b); ok && bytes.Equal(ck, c.cookie) {
		l.unproven.Remove(c.unproven)
		c.unproven = nil
		c.timer.Stop() // the handshake timeout bounds it now
	}
}

// ipOf is the IP address of addr as a string, or its whole string if it
// has no host part.
func ipOf(addr net.Addr) string {
	if u, ok := addr.(*net.UDPAddr); ok {
		return string(u.IP.To16())
	}
	s := addr.String()
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return s
}

// epoch0 reports whether a record is unprotected: the handshake's first
// flights, and its alerts.
func epoch0(b []byte) bool { return len(b) >= 5 && b[3] == 0 && b[4] == 0 }

// hasFinished reports whether a datagram carries a protected handshake
// record: the client's Finished.
func hasFinished(b []byte) bool {
	for r := range records(b) {
		if r.typ == contentHandshake && r.epoch > 0 {
			return true
		}
	}
	return false
}

// Handshake message types the listener reads (RFC 6347).
const (
	typeClientHello        = 1
	typeHelloVerifyRequest = 3
)

// hsHeader is the offset of a datagram's first handshake message: the
// record header and the record's length.
const hsHeader = recordHeaderLen + 2

// isClientHello reports whether a datagram starts with a ClientHello in
// epoch 0 (its first fragment).
func isClientHello(b []byte) bool {
	return len(b) >= hsHeader+12 && b[0] == contentHandshake && epoch0(b) &&
		b[hsHeader] == typeClientHello && b[hsHeader+6] == 0 && b[hsHeader+7] == 0 && b[hsHeader+8] == 0
}

// isNewClientHello reports whether a datagram starts with the first
// ClientHello of a handshake: epoch 0, handshake type 1, message sequence 0.
func isNewClientHello(b []byte) bool {
	return isClientHello(b) && b[hsHeader+4] == 0 && b[hsHeader+5] == 0
}

// helloCookie returns the cookie of the ClientHello that starts datagram
// b: the body is client_version (2), random (32), session_id (1 + n),
// cookie (1 + n).
func helloCookie(b []byte) ([]byte, bool) {
	if !isClientHello(b) {
		return nil, false
	}
	body := b[hsHeader+12:]
	const sidAt = 2 + 32
	if len(body) < sidAt+1 {
		return nil, false
	}
	ckAt := sidAt + 1 + int(body[sidAt])
	if len(body) < ckAt+1 || len(body) < ckAt+1+int(body[ckAt]) {
		return nil, false
	}
	return body[ckAt+1 : ckAt+1+int(body[ckAt])], true
}

// helloVerifyCookie returns the cookie of the HelloVerifyRequest that
// starts datagram b (pion's server writing it), or nil: the body is
// server_version (2), cookie (1 + n).
func helloVerifyCookie(b []byte) []byte {
	if len(b) < hsHeader+12+3 || b[0] != contentHandshake || !epoch0(b) || b[hsHeader] != typeHelloVerifyRequest {
		return nil
	}
	body := b[hsHeader+12:]
	if n := int(body[2]); len(body) >= 3+n {
		return bytes.Clone(body[3 : 3+n])
	}
	return nil
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
	conn := old.conn
	if orphan {
		old.closeLocked()
	}
	l.mu.Unlock()
	if orphan && conn != nil {
		conn.Close()
	}
}

// handshake runs the server's side of a new connection's handshake and
// hands the connection to Accept.
func (l *listener) handshake(c *serverConn) {
	defer l.hs.Done()
	defer func() {
		l.mu.Lock()
		l.running--
		l.mu.Unlock()
	}()
	defer c.hcancel()
	gen := dtls.RandomCIDGenerator(cidLen)
	newCID := func() []byte {
		// The ID this server asks the client to send is the routing key.
		id := gen()
		l.mu.Lock()
		if l.ctx.Err() == nil && !isClosed(c.done) {
			l.byCID[string(id)] = c
			c.cids = append(c.cids, string(id))
		}
		l.mu.Unlock()
		return id
	}
	conn, err := dtls.ServerWithOptions(c, c.first, l.cfg.serverOptions(newCID, l.sessions)...)
	if err != nil {
		c.Close()
		return
	}
	if err := conn.HandshakeContext(c.hctx); err != nil {
		c.Close()
		conn.Close()
		return
	}
	if !l.establish(c, conn) {
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

// establish moves c from the handshakes in progress to the live
// sessions, closing the least recently heard from if they are more than
// MaxSessions; false if c was closed meanwhile.
func (l *listener) establish(c *serverConn, conn *dtls.Conn) bool {
	l.mu.Lock()
	if isClosed(c.done) {
		l.mu.Unlock()
		return false
	}
	l.leaveHandshakes(c)
	c.conn = conn
	c.last = time.Now()
	c.live = l.live.PushFront(c)
	c.timer = time.AfterFunc(l.lim.IdleTimeout, c.idle)
	var evict []*dtls.Conn
	for l.live.Len() > l.lim.MaxSessions {
		v := l.live.Back().Value.(*serverConn)
		l.stats.evicted++
		evict = append(evict, v.conn)
		v.closeLocked()
	}
	l.mu.Unlock()
	for _, conn := range evict {
		conn.Close()
	}
	return true
}

// leaveHandshakes removes c from the handshakes in progress. Called with
// l.mu held.
func (l *listener) leaveHandshakes(c *serverConn) {
	if !c.inProgress {
		return
	}
	c.inProgress = false
	l.handshakes--
	if l.perIP[c.ip]--; l.perIP[c.ip] <= 0 {
		delete(l.perIP, c.ip)
	}
	if c.unproven != nil {
		l.unproven.Remove(c.unproven)
		c.unproven = nil
	}
	c.timer.Stop()
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
	l.cancel()
	for _, c := range conns {
		c.closeLocked()
	}
	l.mu.Unlock()
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

// forget removes c's routes and its place in the handshakes or the
// sessions. Called with l.mu held.
func (l *listener) forget(c *serverConn) {
	delete(l.conns, c)
	defer l.shrink()
	l.leaveHandshakes(c)
	if c.live != nil {
		l.live.Remove(c.live)
		c.live = nil
		c.timer.Stop()
	}
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

// shrink makes the routing maps anew once they hold a quarter of what
// they held at their peak: a Go map never gives back the room it grew,
// and 10,000 sessions gone would otherwise leave theirs. Called with l.mu
// held.
func (l *listener) shrink() {
	n := len(l.conns)
	if l.peak < 1024 || n > l.peak/4 {
		return
	}
	l.conns = remake(l.conns)
	l.byAddr = remake(l.byAddr)
	l.byCID = remake(l.byCID)
	l.perIP = remake(l.perIP)
	l.peak = n
}

// remake copies m into a map just large enough (maps.Clone keeps the
// room).
func remake[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	maps.Copy(out, m)
	return out
}

type datagram struct {
	b       []byte
	addr    net.Addr
	charged bool // counted in its connection's and the listener's held records
}

// serverConn is one peer's share of the listener's net.PacketConn: the
// datagrams routed to it in, its writes out through pc.
type serverConn struct {
	l     *listener
	key   string   // first, as a map key
	ip    string   // first's IP address, for the per-address cap
	first net.Addr // the peer's address when it said hello
	rd    *deadline.Deadline

	hctx    context.Context // the handshake's
	hcancel context.CancelFunc

	// Guarded by l.mu:
	cids       []string
	next       *serverConn   // a new handshake from the same address
	prev       *serverConn   // the session next replaces
	inProgress bool          // counted in l.handshakes and l.perIP
	unproven   *list.Element // in l.unproven: a handshake not proven yet
	cookie     []byte        // the cookie pion's HelloVerifyRequest carried
	live       *list.Element // in l.live: an established session
	last       time.Time     // a live session last received a datagram
	conn       *dtls.Conn    // a live session's
	timer      *time.Timer   // expire while unproven, idle while live

	sentCookie  atomic.Bool   // cookie is set
	established chan struct{} // closed when the server's handshake completed

	qmu     sync.Mutex
	q       []datagram    // for pion's reader
	held    []datagram    // application records that came before the handshake completed
	charged int           // datagrams in q and held counted against the limits
	signal  chan struct{} // a datagram was queued

	closeOnce sync.Once
	done      chan struct{}
}

// deliver queues a copy of datagram b for c's reader, unless that goes
// beyond the limits: before the handshake completes, Limits.HeldRecords
// for c and Limits.HeldBytes for the listener; after, connQueue.
func (c *serverConn) deliver(b []byte, addr net.Addr) {
	pre := !isClosed(c.established)
	c.qmu.Lock()
	switch {
	case isClosed(c.done):
		c.qmu.Unlock()
		return
	case pre && (c.charged >= c.l.lim.HeldRecords || !c.l.charge(len(b))):
		c.qmu.Unlock()
		return
	case !pre && len(c.q) >= connQueue:
		c.qmu.Unlock()
		return // the reader is behind: dropped, as by a full socket buffer
	}
	if pre {
		c.charged++
	}
	c.q = append(c.q, datagram{bytes.Clone(b), addr, pre})
	c.qmu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// charge counts n bytes against Limits.HeldBytes; false if they do not
// fit.
func (l *listener) charge(n int) bool {
	for {
		held := l.held.Load()
		if held+int64(n) > int64(l.lim.HeldBytes) {
			return false
		}
		if l.held.CompareAndSwap(held, held+int64(n)) {
			return true
		}
	}
}

// release uncounts d, which leaves c. Called with c.qmu held.
func (c *serverConn) release(d datagram) {
	if d.charged {
		c.charged--
		c.l.held.Add(-int64(len(d.b)))
	}
}

// ReadFrom implements net.PacketConn for pion's one reader goroutine.
func (c *serverConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		up := isClosed(c.established)
		c.qmu.Lock()
		if up && len(c.held) > 0 {
			d := c.held[0]
			c.held[0] = datagram{}
			if c.held = c.held[1:]; len(c.held) == 0 {
				c.held = nil
			}
			c.release(d)
			c.qmu.Unlock()
			return copy(b, d.b), d.addr, nil
		}
		var (
			d  datagram
			ok bool
		)
		for !ok && len(c.q) > 0 {
			d = c.q[0]
			c.q[0] = datagram{}
			if c.q = c.q[1:]; len(c.q) == 0 {
				c.q = nil // an idle session holds no queue
			}
			if !up && len(d.b) > 0 && (d.b[0] == contentAppData || d.b[0] == contentCID) {
				c.held = append(c.held, d) // still counted
				continue
			}
			c.release(d)
			ok = true
		}
		c.qmu.Unlock()
		if ok {
			return copy(b, d.b), d.addr, nil
		}
		wait := c.established
		if up {
			wait = nil // nothing left to wait for
		}
		select {
		case <-c.signal:
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

// WriteTo implements net.PacketConn for pion; it notes the cookie of the
// HelloVerifyRequest, which the client's next ClientHello must return to
// prove its handshake.
func (c *serverConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if isClosed(c.done) {
		return 0, net.ErrClosed
	}
	if !c.sentCookie.Load() {
		if ck := helloVerifyCookie(b); ck != nil {
			c.l.mu.Lock()
			c.cookie = ck
			c.l.mu.Unlock()
			c.sentCookie.Store(true)
		}
	}
	return c.l.pc.WriteTo(b, addr)
}

// expire ends c's handshake if it is still unproven: UnprovenTimeout
// passed.
func (c *serverConn) expire() {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	if c.unproven != nil {
		c.l.stats.expired++
		c.closeLocked()
	}
}

// idle closes c's session, with no close_notify, if it has received
// nothing for Limits.IdleTimeout; else it looks again when it could have.
func (c *serverConn) idle() {
	l := c.l
	l.mu.Lock()
	if c.live == nil {
		l.mu.Unlock()
		return
	}
	if left := l.lim.IdleTimeout - time.Since(c.last); left > 0 {
		c.timer.Reset(left)
		l.mu.Unlock()
		return
	}
	l.stats.idled++
	conn := c.conn
	c.closeLocked()
	l.mu.Unlock()
	conn.Close() // its writes fail: the session's secrets stay in the store
}

// Close implements net.PacketConn: c's reads end and its routes go.
func (c *serverConn) Close() error {
	c.l.mu.Lock()
	c.closeLocked()
	c.l.mu.Unlock()
	return nil
}

// closeLocked is Close with l.mu held.
func (c *serverConn) closeLocked() {
	c.closeOnce.Do(func() {
		close(c.done)
		if c.hcancel != nil {
			c.hcancel()
		}
		c.l.forget(c)
		c.qmu.Lock()
		for _, d := range c.q {
			c.release(d)
		}
		for _, d := range c.held {
			c.release(d)
		}
		c.q, c.held = nil, nil
		c.qmu.Unlock()
	})
}

func (c *serverConn) LocalAddr() net.Addr                { return c.l.pc.LocalAddr() }
func (c *serverConn) SetDeadline(t time.Time) error      { return c.SetReadDeadline(t) }
func (c *serverConn) SetReadDeadline(t time.Time) error  { c.rd.Set(t); return nil }
func (c *serverConn) SetWriteDeadline(t time.Time) error { return nil }
