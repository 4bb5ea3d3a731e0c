package fileserver

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/tether-iot/tether/coap"
)

// udpMaxPayload is the largest block served over UDP.
const udpMaxPayload = 1024

// ServeUDP answers requests arriving on pc until pc is closed or the server
// is; it then returns ErrServerClosed, or pc's error. Confirmable requests
// get piggybacked responses; a retransmitted request is simply answered
// again (GET is idempotent). Q-Block2 transfers are paced (see qblock.go)
// with pc's read deadline, which ServeUDP owns; nothing else is kept per
// client.
func (s *Server) ServeUDP(pc net.PacketConn) error { return s.serveUDP(pc, UDP, "") }

// serveUDP is ServeUDP for a transport, UDP or a DTLS session's, and the
// identity of a session's client.
func (s *Server) serveUDP(pc net.PacketConn, tr Transport, identity string) error {
	if !s.track(pc) {
		pc.Close() // as net/http's Serve does: what it was given is closed
		return ErrServerClosed
	}
	defer s.untrack(pc)
	tk := s.newTracker(tr, identity)
	l := &udpLoop{
		s: s, pc: pc, tr: tr, tk: tk,
		in:    make([]byte, 2048),
		out:   make([]byte, 0, udpMaxPayload+256),
		req:   coap.Message{Options: make(coap.Options, 0, 16)},
		resp:  newResponse(udpMaxPayload),
		lim:   limits{maxPayload: udpMaxPayload, qblock: !s.noQBlock, wait: waitAside, tk: tk},
		pacer: qpacer{p: s.non, xfers: make(map[qkey]*qtransfer)},
	}
	defer tk.close() // before untrack: Close waits for the lines
	l.ap, _ = pc.(addrPortConn)
	l.sendFn = l.send
	// Requests for a file being prepared wait aside (wait.go).
	l.held = &aside{stop: make(chan struct{})}
	defer close(l.held.stop)
	return l.run()
}

// udpLoop is one serveUDP loop: its buffers, reused for every request, its
// Q-Block2 transfers and their pacing, and its read deadline.
type udpLoop struct {
	s      *Server
	pc     net.PacketConn
	ap     addrPortConn // pc's allocation-free side, if it has one
	tr     Transport
	tk     *tracker
	in     []byte
	out    []byte
	req    coap.Message
	resp   *response
	lim    limits
	mid    uint16 // message IDs of our NON responses
	pacer  qpacer
	due    time.Time // when the next paced set is due; the read deadline
	held   *aside
	sendFn sender // l.send, made once
}

// run reads and serves datagrams, and sends the paced sets when they are
// due, until pc is closed or the server is.
func (l *udpLoop) run() error {
	for {
		if !l.due.IsZero() && !time.Now().Before(l.due) {
			l.due = l.tick()
			l.pc.SetReadDeadline(l.due)
		}
		// After any deadline the loop set, before it reads: a wake-up
		// (a deadline in the past) set since is either undone here with
		// its datagram taken, or ends the read.
		if d, ok := l.held.take(); ok {
			l.pc.SetReadDeadline(l.due)
			if coap.DecodeUDP(d.data, &l.req) == nil {
				l.serve(d.data, d.to, limits{maxPayload: l.lim.maxPayload, qblock: l.lim.qblock, wait: waitNot, prior: d.p, tk: l.tk})
			}
			continue
		}
		n, from, err := l.read()
		if err != nil {
			if l.s.isClosed() || errors.Is(err, net.ErrClosed) {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				l.pc.SetReadDeadline(l.due) // a set due, or a wake-up: either way, look again
				continue
			}
			return err
		}
		if coap.DecodeUDP(l.in[:n], &l.req) != nil {
			continue // junk
		}
		l.serve(l.in[:n], from, l.lim)
	}
}

// read reads the next datagram into l.in.
func (l *udpLoop) read() (int, client, error) {
	if l.ap != nil {
		n, peer, err := l.ap.ReadFromUDPAddrPort(l.in) // no allocation per datagram
		return n, client{ap: peer}, err
	}
	n, from, err := l.pc.ReadFrom(l.in)
	return n, client{addr: from}, err
}

// send encodes and sends m to a client.
func (l *udpLoop) send(m *coap.Message, to client) {
	var err error
	if l.out, err = coap.AppendUDP(l.out[:0], m); err != nil {
		l.s.log.Error("fileserver: encode", "err", err)
		return
	}
	ended := l.tk.sent(m, l.resp.of, l.resp.name, to) // before it leaves (access.go)
	if l.ap != nil && to.addr == nil {
		l.ap.WriteToUDPAddrPort(l.out, to.ap)
	} else {
		l.pc.WriteTo(l.out, to.addr)
	}
	if ended {
		l.s.transferEnded()
	}
}

// tick sends the Q-Block2 sets that are due and logs the transfers whose
// time is up; it returns when it is next needed.
func (l *udpLoop) tick() time.Time {
	d := l.s.fire(&l.pacer, l.resp, &l.mid, l.sendFn)
	l.tk.sweep(time.Now())
	return earlier(d, l.tk.next)
}

// serve answers the request decoded (in l.req) from datagram b.
func (l *udpLoop) serve(b []byte, to client, lim limits) {
	req, resp, m := &l.req, l.resp, &l.resp.m
	resp.plan.active = false
	if !l.answer(b, to, lim) {
		return
	}
	m.MessageID = req.MessageID
	if m.Type == coap.NonConfirmable {
		l.mid++
		m.MessageID = int32(l.mid)
	}
	if m.Type != coap.Reset {
		m.Token = req.Token
	}
	code := m.Code
	if m.Type == coap.Reset {
		code = coap.BadOption // rejected (RFC 7252 5.4.1)
	}
	l.send(m, to)
	if req.Code != coap.Empty { // not a ping
		l.s.obs.Request(l.tr, code)
	}
	l.schedule(to)
}

// answer fills l.resp for the request in l.req; false: nothing is sent (an
// ACK or RST, of which nothing of ours is outstanding, or a request set
// aside).
func (l *udpLoop) answer(b []byte, to client, lim limits) bool {
	req := &l.req
	switch {
	case req.Type == coap.Confirmable && req.Code == coap.Empty:
		// A CoAP ping: answer with a Reset.
		reset(&l.resp.m)
		return true
	case req.Type == coap.Confirmable:
		return l.answerCON(b, to, lim)
	case (req.Type == coap.NonConfirmable || req.Type == coap.Acknowledgement && req.Code == coap.GET && hasOption(req.Options, coap.QBlock2)) && req.Code != coap.Empty:
		// An ACK that carries a Q-Block2 GET is malformed (RFC 7252
		// 4.2), but it is how libcoap 4.3.5's client, in CON mode,
		// asks for the blocks a burst lost: served as NON, so that
		// its transfer completes.
		return l.answerNON(b, to, lim)
	}
	return false
}

// answerCON answers a confirmable request, piggybacked.
func (l *udpLoop) answerCON(b []byte, to client, lim limits) bool {
	s, resp := l.s, l.resp
	s.handle(&l.req, resp, lim, to)
	if l.setAside(b, to) {
		return false
	}
	resp.m.Type = coap.Acknowledgement
	if p := &resp.plan; p.active {
		switch burst := len(p.rest) > 0 || p.cont >= 0; {
		case !burst:
			// One block, piggybacked. Its Echo lets the client
			// ask for bursts (echo.go).
			p.active = false
			s.addEcho(resp, to, time.Now())
		case !s.verified(&l.pacer, &l.req, resp, to, time.Now()):
			s.challenge(resp, to, time.Now()) // as for NON (echo.go)
		}
		// A burst for a verified address: the first block
		// piggybacked, the rest NON, paced as for NON.
	}
	return true
}

// answerNON answers a non-confirmable request.
func (l *udpLoop) answerNON(b []byte, to client, lim limits) bool {
	s, resp := l.s, l.resp
	resp.m.Type = coap.NonConfirmable
	rejected := s.handle(&l.req, resp, lim, to)
	if l.setAside(b, to) {
		return false
	}
	if rejected {
		// RFC 7252 5.4.1: a NON message with an unrecognized
		// critical option is rejected, with a Reset (4.3).
		reset(&resp.m)
	}
	if p := &resp.plan; p.active && (len(p.rest) > 0 || p.cont >= 0) && !s.verified(&l.pacer, &l.req, resp, to, time.Now()) {
		s.challenge(resp, to, time.Now()) // a burst for an address not shown to receive
	}
	return true
}

// setAside reports whether the request (datagram b) was set aside to wait
// for its file; if it could not be, it is answered 5.03.
func (l *udpLoop) setAside(b []byte, to client) bool {
	p := l.resp.aside
	if p == nil {
		return false
	}
	l.resp.aside = nil
	if l.s.setAside(l.held, l.pc, b, to, p) {
		return true
	}
	l.s.unavailable(l.resp, p)
	return false
}

// schedule starts, after a response went out, what follows it: the rest of
// a Q-Block2 plan and its pacing, or the read deadline that writes a
// transfer's access-log line.
func (l *udpLoop) schedule(to client) {
	if l.resp.plan.active {
		l.s.afterQBlock(&l.pacer, &l.req, l.resp, to, &l.mid, l.sendFn)
		if d := l.tick(); !d.Equal(l.due) {
			l.due = d
			l.pc.SetReadDeadline(l.due)
		}
	} else if n := l.tk.next; !n.IsZero() && (l.due.IsZero() || n.Before(l.due)) {
		l.due = n // a transfer's line to write
		l.pc.SetReadDeadline(l.due)
	}
}

// reset makes m an empty Reset.
func reset(m *coap.Message) {
	m.Type, m.Code, m.Token, m.Options, m.Payload = coap.Reset, coap.Empty, nil, m.Options[:0], nil
}

// addrPortConn is the allocation-free side of *net.UDPConn.
type addrPortConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// ServeDatagramListener serves every connection accepted on ln as ServeUDP
// serves a PacketConn: ln must be message-oriented, one Read one datagram,
// as a DTLS listener is (coaps://). It returns ErrServerClosed, or ln's
// error.
func (s *Server) ServeDatagramListener(ln net.Listener) error {
	if !s.track(ln) {
		ln.Close() // as net/http's Serve does: what it was given is closed
		return ErrServerClosed
	}
	defer s.untrack(ln)
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosed() || errors.Is(err, net.ErrClosed) {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// A failed handshake is the client's problem, not the listener's.
			s.log.Debug("fileserver: accept", "err", err)
			continue
		}
		s.obs.Handshake(DTLS, c, nil)
		if s.draining.Load() {
			s.obs.Refused(DTLS, "draining")
			c.Close()
			continue
		}
		go func() {
			defer c.Close() // a failed handshake too: pion's listener waits for every conn it handed out
			var identity string
			if s.peerIdentity != nil {
				identity = s.peerIdentity(c)
			}
			s.obs.Conn(DTLS, c, true)
			defer s.obs.Conn(DTLS, c, false)
			s.serveUDP(&connPacketConn{Conn: c}, DTLS, identity)
		}()
	}
}

// connPacketConn presents a message-oriented net.Conn as a net.PacketConn
// with one peer.
type connPacketConn struct{ net.Conn }

func (c *connPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, err := c.Read(b)
	return n, c.RemoteAddr(), err
}

func (c *connPacketConn) WriteTo(b []byte, _ net.Addr) (int, error) { return c.Write(b) }
