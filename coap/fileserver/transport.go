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
	var (
		in    = make([]byte, 2048)
		out   = make([]byte, 0, udpMaxPayload+256)
		req   = coap.Message{Options: make(coap.Options, 0, 16)}
		resp  = newResponse(udpMaxPayload)
		tk    = s.newTracker(tr, identity)
		lim   = limits{maxPayload: udpMaxPayload, qblock: !s.noQBlock, wait: waitAside, tk: tk}
		mid   uint16 // message IDs of our NON responses
		pacer = qpacer{p: s.non, xfers: make(map[qkey]*qtransfer)}
		due   time.Time // when the next paced set is due; the read deadline
	)
	defer tk.close() // before untrack: Close waits for the lines
	ap, _ := pc.(addrPortConn)
	send := func(m *coap.Message, to client) {
		var err error
		if out, err = coap.AppendUDP(out[:0], m); err != nil {
			s.log.Error("fileserver: encode", "err", err)
			return
		}
		ended := tk.sent(m, resp.of, resp.name, to) // before it leaves (access.go)
		if ap != nil && to.addr == nil {
			ap.WriteToUDPAddrPort(out, to.ap)
		} else {
			pc.WriteTo(out, to.addr)
		}
		if ended {
			s.transferEnded()
		}
	}
	// tick sends the Q-Block2 sets that are due and logs the transfers
	// whose time is up; it returns when it is next needed.
	tick := func() time.Time {
		d := s.fire(&pacer, resp, &mid, send)
		tk.sweep(time.Now())
		return earlier(d, tk.next)
	}
	// Requests for a file being prepared wait aside (wait.go).
	held := &aside{stop: make(chan struct{})}
	defer close(held.stop)
	// serve answers the request decoded from datagram b.
	serve := func(b []byte, to client, lim limits) {
		m := &resp.m
		resp.plan.active = false
		// setAside reports whether the request was set aside; if it
		// could not be, it is answered 5.03.
		setAside := func() bool {
			p := resp.aside
			if p == nil {
				return false
			}
			resp.aside = nil
			if s.setAside(held, pc, b, to, p) {
				return true
			}
			s.unavailable(resp, p)
			return false
		}
		switch {
		case req.Type == coap.Confirmable && req.Code == coap.Empty:
			// A CoAP ping: answer with a Reset.
			m.Type, m.Code, m.Token, m.Options, m.Payload = coap.Reset, coap.Empty, nil, m.Options[:0], nil
		case req.Type == coap.Confirmable:
			s.handle(&req, resp, lim, to)
			if setAside() {
				return
			}
			m.Type = coap.Acknowledgement
			if p := &resp.plan; p.active {
				switch burst := len(p.rest) > 0 || p.cont >= 0; {
				case !burst:
					// One block, piggybacked. Its Echo lets the client
					// ask for bursts (echo.go).
					p.active = false
					s.addEcho(resp, to, time.Now())
				case !s.verified(&pacer, &req, resp, to, time.Now()):
					s.challenge(resp, to, time.Now()) // as for NON (echo.go)
				}
				// A burst for a verified address: the first block
				// piggybacked, the rest NON, paced as for NON.
			}
		case (req.Type == coap.NonConfirmable || req.Type == coap.Acknowledgement && req.Code == coap.GET && hasOption(req.Options, coap.QBlock2)) && req.Code != coap.Empty:
			// An ACK that carries a Q-Block2 GET is malformed (RFC 7252
			// 4.2), but it is how libcoap 4.3.5's client, in CON mode,
			// asks for the blocks a burst lost: served as NON, so that
			// its transfer completes.
			m.Type = coap.NonConfirmable
			rejected := s.handle(&req, resp, lim, to)
			if setAside() {
				return
			}
			if rejected {
				// RFC 7252 5.4.1: a NON message with an unrecognized
				// critical option is rejected, with a Reset (4.3).
				m.Type, m.Code, m.Token, m.Options, m.Payload = coap.Reset, coap.Empty, nil, m.Options[:0], nil
			}
			if p := &resp.plan; p.active && (len(p.rest) > 0 || p.cont >= 0) && !s.verified(&pacer, &req, resp, to, time.Now()) {
				s.challenge(resp, to, time.Now()) // a burst for an address not shown to receive
			}
		default:
			return // ACKs and RSTs: nothing of ours is outstanding
		}
		m.MessageID = req.MessageID
		if m.Type == coap.NonConfirmable {
			mid++
			m.MessageID = int32(mid)
		}
		if m.Type != coap.Reset {
			m.Token = req.Token
		}
		code := m.Code
		if m.Type == coap.Reset {
			code = coap.BadOption // rejected (RFC 7252 5.4.1)
		}
		send(m, to)
		if req.Code != coap.Empty { // not a ping
			s.obs.Request(tr, code)
		}
		if resp.plan.active {
			s.afterQBlock(&pacer, &req, resp, to, &mid, send)
			if d := tick(); !d.Equal(due) {
				due = d
				pc.SetReadDeadline(due)
			}
		} else if n := tk.next; !n.IsZero() && (due.IsZero() || n.Before(due)) {
			due = n // a transfer's line to write
			pc.SetReadDeadline(due)
		}
	}
	for {
		if !due.IsZero() && !time.Now().Before(due) {
			due = tick()
			pc.SetReadDeadline(due)
		}
		// After any deadline the loop set, before it reads: a wake-up
		// (a deadline in the past) set since is either undone here with
		// its datagram taken, or ends the read.
		if d, ok := held.take(); ok {
			pc.SetReadDeadline(due)
			if coap.DecodeUDP(d.data, &req) == nil {
				serve(d.data, d.to, limits{maxPayload: lim.maxPayload, qblock: lim.qblock, wait: waitNot, prior: d.p, tk: tk})
			}
			continue
		}
		var (
			n    int
			from net.Addr
			peer netip.AddrPort
			err  error
		)
		if ap != nil {
			n, peer, err = ap.ReadFromUDPAddrPort(in) // no allocation per datagram
		} else {
			n, from, err = pc.ReadFrom(in)
		}
		if err != nil {
			if s.isClosed() || errors.Is(err, net.ErrClosed) {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				pc.SetReadDeadline(due) // a set due, or a wake-up: either way, look again
				continue
			}
			return err
		}
		if coap.DecodeUDP(in[:n], &req) != nil {
			continue // junk
		}
		serve(in[:n], client{from, peer}, lim)
	}
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
