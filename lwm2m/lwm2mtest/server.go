package lwm2mtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
	"github.com/tether-iot/tether/lwm2m/content"
	"github.com/tether-iot/tether/sock/dtlssock"
)

// Errors.
var (
	// ErrNotRegistered reports a Device Management request or a wait for
	// an endpoint that has no registration.
	ErrNotRegistered = errors.New("lwm2mtest: endpoint not registered")
	// ErrClosed reports a call on a closed Server.
	ErrClosed = errors.New("lwm2mtest: server closed")
)

// DefaultMaxClients bounds the plain-UDP peers a Server keeps, one per
// source address, when Options.MaxClients is zero.
const DefaultMaxClients = 100000

// idleAfter is how long a plain-UDP peer that no registration uses is
// kept after its last datagram: longer than RFC 7252's EXCHANGE_LIFETIME
// (247 s), so a late retransmission still finds its deduplication cache.
const idleAfter = 5 * time.Minute

// Options configure a Server; nil or zero values are the defaults.
type Options struct {
	// DTLS, when set, serves DTLS (through dtlssock.Listen) with this
	// configuration: the test gives the PSK callback, cipher suites,
	// whether to ask for Connection IDs. Nil serves plain CoAP.
	// NewTCPServer refuses it.
	DTLS *dtlssock.Config
	// TCP makes Start serve CoAP over TCP (RFC 8323, coap+tcp) on a
	// loopback TCP port, through NewTCPServer, instead of UDP.
	TCP bool
	// TLS, when set, serves TLS over TCP (coaps+tcp) with this
	// configuration, through NewTCPServer; Start then listens on TCP
	// whatever TCP says. crypto/tls has no pre-shared keys, so coaps+tcp
	// is with certificates: the test gives the server's in
	// Certificates, and ClientCAs with ClientAuth to ask for a device's.
	// NewServer refuses it.
	TLS *tls.Config
	// Params are the CoAP transmission parameters of the Server's
	// requests; zero means coap.DefaultParams. Over TCP nothing is
	// retransmitted: a request waits MAX_TRANSMIT_WAIT for its response.
	Params coap.Params
	// Only10 makes the server an LwM2M 1.0 server: a Register with any
	// lwm2m= version but 1.0 is answered 4.12 Precondition Failed, which
	// tests a client's fallback to 1.0.
	Only10 bool
	// Expire forgets a registration whose lifetime passed since its
	// Register or last Update, as real servers do: its Update is then
	// answered 4.04 and its observations end. Checked when the
	// registration is next used; no timer runs.
	Expire bool
	// MaxClients bounds the plain-UDP peers, one per source address;
	// zero means DefaultMaxClients. When full, peers idle for five
	// minutes that no registration uses are evicted, and if none is, a
	// datagram from a new address is dropped.
	MaxClients int
	// NotifyBuffer is the capacity of each Observation's Notifications
	// channel; zero means DefaultNotifyBuffer (4096, 32 KiB an
	// observation: a run with thousands of observations wants less).
	NotifyBuffer int
	// Seed, when nonzero, seeds every peer's tokens, message IDs and
	// retransmission timeouts, for runs that repeat exactly.
	Seed uint64
	// MaxRecords bounds the Records a Server keeps, of all endpoints
	// together: the oldest are dropped beyond it. Zero means
	// DefaultMaxRecords, negative keeps none.
	MaxRecords int
	// Logger receives registrations at info level and the peers' odd
	// messages at debug level (the wire trace at peer.LevelTrace); nil
	// means none.
	Logger *slog.Logger
}

// Server is an LwM2M server for tests: it accepts Register, Update and
// De-register on /rd and sends Device Management requests to registered
// clients. Its methods are safe for concurrent use.
type Server struct {
	opts   Options
	log    *slog.Logger
	pc     *countingConn
	ln     net.Listener // DTLS, TCP or TLS
	stream bool         // TCP or TLS: NewTCPServer
	wg     sync.WaitGroup
	closed chan struct{}
	once   sync.Once

	mu        sync.Mutex
	done      bool
	clients   map[netip.AddrPort]*client // plain UDP, by source address
	conns     map[*client]struct{}       // DTLS connections
	regs      map[string]*reg            // by endpoint name
	byID      map[string]*reg            // by location id
	obs       map[string]*Observation    // by token
	eps       map[string]*epStats        // by endpoint name, kept after De-register
	cancelled [16]string                 // tokens of the last observations cancelled
	cancels   map[string]chan struct{}   // by token: Cancels over a stream waiting for their answer
	nextCxl   int
	stats     Stats
	recs      recorder
	nextID    int
	seq       uint64 // peer seeds drawn
	changed   chan struct{}
}

// client is one CoAP association: a source address over plain UDP, a
// connection over DTLS, TCP or TLS.
type client struct {
	peer   peer.Exchanger // what the Server's requests go through
	dgram  *peer.Peer     // plain UDP and DTLS: the peer, fed datagrams
	key    netip.AddrPort // plain UDP
	nc     net.Conn       // DTLS, TCP, TLS
	secure bool           // DTLS or TLS: its handshake counts

	// Guarded by Server.mu.
	b1          *block1   // a request arriving block by block
	addr        net.Addr  // where its datagrams come from
	ep          string    // the endpoint registered over it, if any
	handshakeOf string    // DTLS: the endpoint its handshake was counted for
	last        time.Time // its last datagram (plain UDP)
	observing   int       // Observe requests in flight
	early       []*coap.Message
}

// maxEarly bounds the notifications kept for an observation whose first
// response is still on its way to Observe's caller.
const maxEarly = 16

// NewServer serves LwM2M on pc at once, in goroutines that Close stops;
// Close closes pc too.
func NewServer(pc net.PacketConn, opts *Options) (*Server, error) {
	if pc == nil {
		return nil, errors.New("lwm2mtest: NewServer needs a PacketConn")
	}
	if opts != nil && (opts.TCP || opts.TLS != nil) {
		return nil, errors.New("lwm2mtest: Options.TCP and TLS are for NewTCPServer, not a PacketConn")
	}
	s, err := newServer(opts)
	if err != nil {
		return nil, err
	}
	s.pc = newCountingConn(pc, s.opts.MaxClients)
	if s.opts.DTLS != nil {
		cfg := *s.opts.DTLS
		if cfg.Limits.IdleTimeout == 0 {
			// An LwM2M server keeps a registration, and the session it came
			// in on, for the registration's lifetime (a day by default),
			// not for a file server's five idle minutes: a client in queue
			// mode or offline for longer restores it with no handshake.
			cfg.Limits.IdleTimeout = 24 * time.Hour
		}
		ln, err := dtlssock.Listen(s.pc, &cfg)
		if err != nil {
			return nil, err
		}
		s.ln = ln
		s.wg.Add(1)
		go s.accept()
		return s, nil
	}
	s.wg.Add(1)
	go s.readUDP()
	return s, nil
}

// newServer is a Server with opts checked, serving nothing yet.
func newServer(opts *Options) (*Server, error) {
	s := &Server{
		closed:  make(chan struct{}),
		clients: make(map[netip.AddrPort]*client),
		conns:   make(map[*client]struct{}),
		regs:    make(map[string]*reg),
		byID:    make(map[string]*reg),
		obs:     make(map[string]*Observation),
		eps:     make(map[string]*epStats),
		cancels: make(map[string]chan struct{}),
		changed: make(chan struct{}),
	}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.Params == (coap.Params{}) {
		s.opts.Params = coap.DefaultParams
	}
	if err := s.opts.Params.Validate(); err != nil {
		return nil, err
	}
	if s.opts.MaxClients <= 0 {
		s.opts.MaxClients = DefaultMaxClients
	}
	s.recs.max = s.opts.MaxRecords
	if s.recs.max == 0 {
		s.recs.max = DefaultMaxRecords
	}
	s.log = s.opts.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Addr returns the address the Server listens on: a UDP address, or a
// TCP one for NewTCPServer's.
func (s *Server) Addr() net.Addr {
	if s.stream {
		return s.ln.Addr()
	}
	return s.pc.LocalAddr()
}

// URL returns the Server's URL as a device's configuration takes it:
// coap://HOST:PORT, coaps://HOST:PORT with Options.DTLS, coap+tcp://
// from NewTCPServer, coaps+tcp:// with Options.TLS. A Server listening
// on an unspecified address (0.0.0.0, ::) gives loopback's.
func (s *Server) URL() string {
	scheme := "coap://"
	switch {
	case s.opts.DTLS != nil:
		scheme = "coaps://"
	case s.stream && s.opts.TLS != nil:
		scheme = "coaps+tcp://"
	case s.stream:
		scheme = "coap+tcp://"
	}
	a := s.Addr()
	switch u := a.(type) {
	case *net.UDPAddr:
		if u.IP.IsUnspecified() {
			a = &net.UDPAddr{IP: loopbackOf(u.IP), Port: u.Port}
		}
	case *net.TCPAddr:
		if u.IP.IsUnspecified() {
			a = &net.TCPAddr{IP: loopbackOf(u.IP), Port: u.Port}
		}
	}
	return scheme + a.String()
}

// loopbackOf is the loopback address of ip's family.
func loopbackOf(ip net.IP) net.IP {
	if ip.To4() == nil {
		return net.IPv6loopback
	}
	return net.IPv4(127, 0, 0, 1)
}

// Close stops the Server: it closes the PacketConn (or the Listener and
// every connection, over TCP), ends every exchange in
// flight with peer.ErrClosed and every observation (their Notifications
// channels are closed), and waits for its goroutines. Nothing is sent to
// the clients: to them the server just went silent (over TCP, their
// connections closed, with no Release).
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		s.mu.Lock()
		s.done = true
		close(s.closed)
		s.mu.Unlock()
		if s.ln != nil {
			err = s.ln.Close() // DTLS: closes pc, ends the connections' reads
		} else {
			err = s.pc.Close()
		}
		s.mu.Lock()
		var peers []*client
		for _, cl := range s.clients {
			peers = append(peers, cl)
		}
		for cl := range s.conns {
			peers = append(peers, cl)
		}
		for _, o := range s.obs {
			o.end()
		}
		clear(s.obs)
		s.mu.Unlock()
		// Outside s.mu: closing a DTLS connection waits for its record
		// reader, which may be waiting to hand our reader a record.
		for _, cl := range peers {
			if cl.peer != nil { // a TCP connection whose CSM is still on its way
				cl.peer.Close()
			}
			if cl.nc != nil {
				_ = cl.nc.Close()
			}
		}
		s.wg.Wait()
	})
	return err
}

// newPeer makes the peer of a new client; send writes one datagram to it.
func (s *Server) newPeer(cl *client, send func([]byte) error) {
	cfg := &peer.Config{
		Handler:    func(req *coap.Message) coap.Message { return s.handle(cl, req) },
		OnResponse: func(m *coap.Message) bool { return s.onResponse(cl, m) },
		Params:     s.opts.Params,
		Logger:     s.opts.Logger,
	}
	if s.opts.Seed != 0 {
		s.seq++
		cfg.Rand = rand.New(rand.NewPCG(s.opts.Seed, s.seq))
	}
	cl.dgram = peer.New(send, cfg)
	cl.peer = cl.dgram
}

// readUDP is the plain-UDP read loop: each datagram goes to the peer of
// its source address.
func (s *Server) readUDP() {
	defer s.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, addr, err := s.pc.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if !s.isClosed() {
				s.log.Debug("lwm2mtest: read loop ends", "err", err)
			}
			return
		}
		if cl := s.clientFor(addr); cl != nil {
			cl.dgram.Input(buf[:n])
		}
	}
}

// clientFor returns the plain-UDP client of addr, made on its first
// datagram; nil drops the datagram (an address not UDP, or no room).
func (s *Server) clientFor(addr net.Addr) *client {
	key, ok := addrKey(addr)
	if !ok {
		return nil
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	if cl := s.clients[key]; cl != nil {
		cl.last = now
		return cl
	}
	if len(s.clients) >= s.opts.MaxClients {
		s.evictLocked(now)
		if len(s.clients) >= s.opts.MaxClients {
			s.log.Debug("lwm2mtest: too many clients, datagram dropped", "addr", addr)
			return nil
		}
	}
	cl := &client{key: key, addr: addr, last: now}
	s.newPeer(cl, func(b []byte) error { _, err := s.pc.WriteTo(b, addr); return err })
	s.clients[key] = cl
	return cl
}

// evictLocked drops the plain-UDP peers that no registration uses and
// that were idle long enough.
func (s *Server) evictLocked(now time.Time) {
	for k, cl := range s.clients {
		if cl.ep == "" && cl.observing == 0 && now.Sub(cl.last) > idleAfter {
			cl.peer.Close()
			delete(s.clients, k)
		}
	}
}

// accept takes the DTLS connections: each is a client with its reader.
func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		cl := &client{nc: nc, addr: nc.RemoteAddr(), secure: true}
		s.mu.Lock()
		if s.done {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.stats.Handshakes++
		s.newPeer(cl, func(b []byte) error { _, err := nc.Write(b); return err })
		s.conns[cl] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.log.Debug("lwm2mtest: DTLS connection", "addr", cl.addr)
		go s.readConn(cl)
	}
}

// readConn feeds a DTLS connection's records to its peer until the
// connection ends.
func (s *Server) readConn(cl *client) {
	defer s.wg.Done()
	defer func() {
		cl.peer.Close()
		_ = cl.nc.Close()
		s.mu.Lock()
		delete(s.conns, cl)
		s.mu.Unlock()
	}()
	buf := make([]byte, 2048) // a CoAP message of a 1 KiB block fits
	for {
		n, err := cl.nc.Read(buf)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || !temporary(err) {
				return
			}
			continue // a record too long for buf, or a read timeout
		}
		s.mu.Lock()
		if a := cl.nc.RemoteAddr(); a != nil && !sameAddr(a, cl.addr) {
			// A Connection ID brought the client back from elsewhere.
			cl.addr = a
			if r := s.regs[cl.ep]; r != nil && r.cl == cl {
				r.Addr = a
				s.pc.tag(a, cl.ep)
			}
		}
		s.mu.Unlock()
		cl.dgram.Input(buf[:n])
	}
}

func temporary(err error) bool {
	var t interface{ Temporary() bool }
	var ne net.Error
	return (errors.As(err, &t) && t.Temporary()) || (errors.As(err, &ne) && ne.Timeout())
}

func (s *Server) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// Stats counts what a Server did, or what one endpoint did (EndpointStats).
type Stats struct {
	// Registers, Updates and Deregisters count the operations accepted
	// (2.01, 2.04, 2.02); Rejected the requests on /rd answered with an
	// error (4.00, 4.04 for an unknown location, 4.05, 4.12).
	Registers, Updates, Deregisters, Rejected int
	// Handshakes counts DTLS connections accepted, and TLS handshakes
	// completed: each is a handshake, full or abbreviated (a session
	// restored with a Connection ID is not a new connection). Per
	// endpoint: the connections it registered or updated over.
	Handshakes int
	// Notifications counts the notifications received for observations.
	Notifications int
	// Datagrams and bytes on the PacketConn, everything (DTLS records
	// and handshakes included); over TCP, no datagrams and the bytes of
	// the connections (TLS records and handshakes included). Per endpoint: those of every address the
	// endpoint registered or updated from (or, over DTLS, that its
	// connection moved to), counted from that address's first datagram.
	DatagramsIn, DatagramsOut int
	BytesIn, BytesOut         int64
}

// epStats is what the Server keeps of an endpoint, registered or not.
type epStats struct {
	Stats
	last Registration // as the last Register or Update left it
}

func (s *Server) epLocked(ep string) *epStats {
	e := s.eps[ep]
	if e == nil {
		e = &epStats{}
		s.eps[ep] = e
	}
	return e
}

// Stats returns the Server's counters so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := s.stats
	s.mu.Unlock()
	st.DatagramsIn, st.DatagramsOut, st.BytesIn, st.BytesOut = s.pc.totals()
	return st
}

// EndpointStats returns the counters of one endpoint (zero for an endpoint
// never seen).
func (s *Server) EndpointStats(ep string) Stats {
	s.mu.Lock()
	var st Stats
	if e := s.eps[ep]; e != nil {
		st = e.Stats
	}
	s.mu.Unlock()
	st.DatagramsIn, st.DatagramsOut, st.BytesIn, st.BytesOut = s.pc.endpoint(ep)
	return st
}

// broadcastLocked wakes every Wait.
func (s *Server) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// wait waits until cond, called under s.mu, holds.
func (s *Server) wait(ctx context.Context, what string, cond func() (Registration, bool)) (Registration, error) {
	for {
		s.mu.Lock()
		r, ok := cond()
		ch, done := s.changed, s.done
		s.mu.Unlock()
		switch {
		case ok:
			return r, nil
		case done:
			return Registration{}, fmt.Errorf("lwm2mtest: waiting for %s: %w", what, ErrClosed)
		}
		select {
		case <-ch:
		case <-s.closed:
		case <-ctx.Done():
			return Registration{}, fmt.Errorf("lwm2mtest: waiting for %s: %w", what, ctx.Err())
		}
	}
}

// WaitRegistered waits until ep has registered more than after times and
// returns its registration as the latest Register or Update left it (even
// if it has De-registered since).
func (s *Server) WaitRegistered(ctx context.Context, ep string, after int) (Registration, error) {
	return s.wait(ctx, fmt.Sprintf("%s's Register #%d", ep, after+1), func() (Registration, bool) {
		e := s.eps[ep]
		if e == nil || e.Registers <= after {
			return Registration{}, false
		}
		return e.last, true
	})
}

// WaitUpdated waits until ep has sent more than after Updates and returns
// its registration as the latest Register or Update left it.
func (s *Server) WaitUpdated(ctx context.Context, ep string, after int) (Registration, error) {
	return s.wait(ctx, fmt.Sprintf("%s's Update #%d", ep, after+1), func() (Registration, bool) {
		e := s.eps[ep]
		if e == nil || e.Updates <= after {
			return Registration{}, false
		}
		return e.last, true
	})
}

// WaitDeregistered waits until ep has no registration: it De-registered,
// expired (Options.Expire), or never registered.
func (s *Server) WaitDeregistered(ctx context.Context, ep string) error {
	_, err := s.wait(ctx, ep+"'s De-register", func() (Registration, bool) {
		return Registration{}, s.liveLocked(ep) == nil
	})
	return err
}

func sameAddr(a, b net.Addr) bool {
	ka, oka := addrKey(a)
	kb, okb := addrKey(b)
	return oka && okb && ka == kb
}

// addrKey is a UDP address as a map key.
func addrKey(a net.Addr) (netip.AddrPort, bool) {
	if u, ok := a.(*net.UDPAddr); ok {
		ap := u.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ap.IsValid()
	}
	if a == nil {
		return netip.AddrPort{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// Link returns the link of the Register payload whose target is target
// ("/3/0"), and whether there is one.
func (r Registration) Link(target string) (content.Link, bool) {
	for _, l := range r.Links {
		if l.Target == target {
			return l, true
		}
	}
	return content.Link{}, false
}
