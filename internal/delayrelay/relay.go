package delayrelay

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// maxDatagram holds any UDP payload, so nothing is ever truncated.
const maxDatagram = 64 << 10

// Relay is a running relay. Its methods are safe for concurrent use.
type Relay struct {
	cfg    Config
	server netip.AddrPort
	ln     *net.UDPConn
	epoch  time.Time // mappings' idle times count from here

	up, down           *scheduler
	upStats, downStats counters
	mapped, expired    atomic.Uint64
	refused, stray     atomic.Uint64

	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once

	mu       sync.Mutex
	closed   bool
	clients  map[netip.AddrPort]*mapping
	nextFlow uint64
}

// mapping is one client's socket towards the server, and its two flows.
type mapping struct {
	client netip.AddrPort
	conn   *net.UDPConn
	// busyUntil is the latest of the mapping's last datagram and the due
	// time of its datagrams still waiting, as time since Relay.epoch.
	busyUntil atomic.Int64
	up        flow // used by the listening socket's reader only
	down      flow // used by this mapping's reader only
}

// flow is one client and one direction: its generator and the due time of
// its last datagram, which the next one may not precede unless reordering.
type flow struct {
	rng  *rand.Rand
	last time.Time
}

func (m *mapping) touch(r *Relay, t time.Time) {
	d := int64(t.Sub(r.epoch))
	for {
		old := m.busyUntil.Load()
		if d <= old || m.busyUntil.CompareAndSwap(old, d) {
			return
		}
	}
}

// Start validates cfg, listens on cfg.Listen and starts relaying.
func Start(cfg Config) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	listen, server, _ := cfg.addrs()
	ln, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(listen))
	if err != nil {
		return nil, err
	}
	r := &Relay{
		cfg:     cfg,
		server:  server,
		ln:      ln,
		epoch:   time.Now(),
		done:    make(chan struct{}),
		clients: make(map[netip.AddrPort]*mapping),
	}
	r.up = newScheduler(&r.upStats, cfg.Up, cfg.MaxQueued, cfg.MaxQueuedBytes, func(p *packet) error {
		_, err := p.m.conn.WriteToUDPAddrPort(p.data, r.server)
		return err
	})
	r.down = newScheduler(&r.downStats, cfg.Down, cfg.MaxQueued, cfg.MaxQueuedBytes, func(p *packet) error {
		_, err := r.ln.WriteToUDPAddrPort(p.data, p.to)
		return err
	})
	r.wg.Add(4)
	go func() { defer r.wg.Done(); r.up.run(r.done) }()
	go func() { defer r.wg.Done(); r.down.run(r.done) }()
	go func() { defer r.wg.Done(); r.readClients() }()
	go func() { defer r.wg.Done(); r.expire() }()
	return r, nil
}

// Addr is the address clients send to.
func (r *Relay) Addr() netip.AddrPort { return r.ln.LocalAddr().(*net.UDPAddr).AddrPort() }

// Close stops the relay: its sockets are closed, what waits is dropped,
// and every goroutine has ended when it returns. It always returns nil.
func (r *Relay) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		for _, m := range r.clients {
			m.conn.Close()
		}
		clear(r.clients)
		r.mu.Unlock()
		r.ln.Close()
		close(r.done)
		r.wg.Wait()
	})
	return nil
}

// readClients reads the clients' datagrams until the listening socket is
// closed.
func (r *Relay) readClients() {
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := r.ln.ReadFromUDPAddrPort(buf)
		if err != nil {
			if r.stopped(err) {
				return
			}
			continue
		}
		r.upStats.received.Add(1)
		now := time.Now()
		m := r.mappingFor(from, now)
		if m == nil {
			continue
		}
		r.pass(r.up, &m.up, r.cfg.Up, m, buf[:n], now)
	}
}

// readServer reads the server's replies to one client until the mapping's
// socket is closed.
func (r *Relay) readServer(m *mapping) {
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := m.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if r.stopped(err) {
				return
			}
			continue
		}
		if netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) != r.server {
			r.stray.Add(1) // only the server gets through, as with a NAT
			continue
		}
		r.downStats.received.Add(1)
		now := time.Now()
		m.touch(r, now)
		r.pass(r.down, &m.down, r.cfg.Down, m, buf[:n], now)
	}
}

// stopped tells whether a read error means the socket is closed for good.
func (r *Relay) stopped(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return true
	}
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// pass draws a datagram's fate from its flow and offers a copy of it to
// its direction's scheduler; a datagram queued there keeps its mapping
// alive until it is due.
func (r *Relay) pass(s *scheduler, f *flow, l Link, m *mapping, data []byte, now time.Time) {
	var fd fate
	if l.Loss > 0 && f.rng.Float64() < l.Loss {
		fd.lost = true
	} else if l.Jitter > 0 {
		fd.jitter = time.Duration(f.rng.Int64N(int64(l.Jitter) + 1))
	}
	if due, ok := s.offer(now, data, fd, l.Delay, f, r.cfg.Reorder, m); ok {
		m.touch(r, due)
	}
}

// mappingFor returns from's mapping, made if needed; nil when the client
// bound is reached, the socket cannot be made, or the relay is closed.
func (r *Relay) mappingFor(from netip.AddrPort, now time.Time) *mapping {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	if m := r.clients[from]; m != nil {
		m.touch(r, now)
		return m
	}
	if len(r.clients) >= r.cfg.MaxClients {
		r.refused.Add(1)
		return nil
	}
	local := netip.IPv6Loopback()
	if r.server.Addr().Is4() {
		local = netip.MustParseAddr("127.0.0.1")
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
	if err != nil {
		r.upStats.failed.Add(1)
		return nil
	}
	n := r.nextFlow
	r.nextFlow++
	m := &mapping{
		client: from,
		conn:   conn,
		up:     flow{rng: rand.New(rand.NewPCG(r.cfg.Seed, n<<1))},
		down:   flow{rng: rand.New(rand.NewPCG(r.cfg.Seed, n<<1|1))},
	}
	m.touch(r, now)
	r.clients[from] = m
	r.mapped.Add(1)
	r.wg.Add(1)
	go func() { defer r.wg.Done(); r.readServer(m) }()
	return m
}

// expire forgets the mappings idle for longer than cfg.Idle.
func (r *Relay) expire() {
	tick := min(max(r.cfg.Idle/4, 5*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
		}
		now := int64(time.Since(r.epoch))
		r.mu.Lock()
		for k, m := range r.clients {
			if now-m.busyUntil.Load() > int64(r.cfg.Idle) {
				m.conn.Close()
				delete(r.clients, k)
				r.expired.Add(1)
			}
		}
		r.mu.Unlock()
	}
}

// DirStats counts one direction's datagrams. Once the relay is quiet,
// Received = Forwarded + Lost + Dropped + Overflow + Failed + Queued
// (Up: + Stats.Refused).
type DirStats struct {
	Received  uint64 // reached the relay (Up: from clients, refused ones included)
	Forwarded uint64 // sent on, each after its delay
	Lost      uint64 // dropped by Link.Loss
	Dropped   uint64 // dropped by the link's full queue (Link.Queue)
	Overflow  uint64 // dropped because MaxQueued or MaxQueuedBytes was reached
	Failed    uint64 // the socket refused to send them (or to be made, Up)

	ForwardedBytes uint64 // the UDP payloads of Forwarded, without Link.Overhead

	Queued      int // waiting now, for the link or for their delay
	QueuedBytes int
	// LinkQueued is what waited for the link (Link.Rate) when the
	// latest datagram arrived, in bytes as Link.Queue counts them.
	LinkQueued int
	// Airtime is how long the link (Link.Rate) has been busy serialising
	// the datagrams it took, those Loss then dropped included; the
	// elapsed time less Airtime is how long it stood idle.
	Airtime time.Duration
}

// Stats are a relay's counts since it started.
type Stats struct {
	Up   DirStats // client to server
	Down DirStats // server to client

	Clients int    // mappings now
	Mapped  uint64 // mappings made in all
	Expired uint64 // mappings forgotten after Idle
	Refused uint64 // datagrams of new clients dropped because MaxClients mappings existed
	Stray   uint64 // datagrams at a mapping's socket from another address than the server's (dropped)
}

// Stats returns the counts so far; it works after Close too.
func (r *Relay) Stats() Stats {
	st := Stats{
		Up:      r.up.dirStats(),
		Down:    r.down.dirStats(),
		Mapped:  r.mapped.Load(),
		Expired: r.expired.Load(),
		Refused: r.refused.Load(),
		Stray:   r.stray.Load(),
	}
	r.mu.Lock()
	st.Clients = len(r.clients)
	r.mu.Unlock()
	return st
}

func (s *scheduler) dirStats() DirStats {
	d := DirStats{
		Received:  s.stats.received.Load(),
		Forwarded: s.stats.forwarded.Load(),
		Lost:      s.stats.lost.Load(),
		Dropped:   s.stats.dropped.Load(),
		Overflow:  s.stats.overflow.Load(),
		Failed:    s.stats.failed.Load(),

		ForwardedBytes: s.stats.forwardedBytes.Load(),
	}
	d.Queued, d.QueuedBytes, d.LinkQueued, d.Airtime = s.queued()
	return d
}
