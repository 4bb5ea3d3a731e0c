package fileserver

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-iot/tether/coap"
)

// CoAP over TCP and TLS (RFC 8323): one goroutine per connection, and
// three bounds on what a connection may hold.
//
//   - Connections: at most Options.MaxConns at once, over every listener;
//     one accepted past it is closed at once.
//   - Time: a connection on which no whole frame (a request, a CSM, a
//     Ping) arrived for Options.IdleTimeout is closed, so a client keeps
//     an idle one with CoAP Pings (RFC 8323 5.4); a frame whose first byte
//     arrived must be whole within Options.FrameTimeout, and so must the
//     TLS handshake and the write of each response.
//   - Memory: the buffers that serving takes (the request frame, the
//     response and its encoding: about twice MaxBERT) are the server's,
//     pooled, and a connection holds them only while it is busy: it gives
//     them back once no byte came for bufferLinger after its last frame,
//     and waits for the next with a one-byte read. An idle connection then
//     costs its socket, its goroutine and a few hundred bytes of heap.

// tcpMaxRequest is the largest request frame accepted over TCP, and what
// the server's CSM advertises.
const tcpMaxRequest = 2048

// Defaults of the Options of the same names.
const (
	DefaultMaxConns     = 4096
	DefaultIdleTimeout  = 5 * time.Minute
	DefaultFrameTimeout = 10 * time.Second
)

// bufferLinger is how long a connection keeps its buffers after its last
// frame, waiting for the next: longer than a client's round trip, so that
// a transfer in progress does not take and give them back per block.
const bufferLinger = time.Second

// tcpBufs are the buffers serving a connection takes while it is busy.
type tcpBufs struct {
	framer *coap.Framer
	req    coap.Message
	resp   *response
	out    []byte
}

func (s *Server) getBufs() *tcpBufs {
	s.tcp.bufs.Add(1)
	if b, ok := s.tcpPool.Get().(*tcpBufs); ok {
		return b
	}
	return &tcpBufs{
		framer: coap.NewFramer(tcpMaxRequest),
		req:    coap.Message{Options: make(coap.Options, 0, 16)},
		resp:   newResponse(s.maxBERT),
		out:    make([]byte, 0, s.maxBERT+256),
	}
}

// putBufs gives back buffers whose framer holds nothing.
func (s *Server) putBufs(b *tcpBufs) {
	b.req.Token, b.req.Payload, b.req.Options = nil, nil, b.req.Options[:0]
	s.tcpPool.Put(b)
	s.tcp.bufs.Add(-1)
}

// tcpState counts the connections served, and the buffers they hold.
type tcpState struct {
	mu    sync.Mutex
	conns int
	bufs  atomic.Int64
}

// admit counts a new connection in, or reports false past MaxConns.
func (s *Server) admit() bool {
	s.tcp.mu.Lock()
	defer s.tcp.mu.Unlock()
	if s.maxConns > 0 && s.tcp.conns >= s.maxConns {
		return false
	}
	s.tcp.conns++
	return true
}

func (s *Server) release() {
	s.tcp.mu.Lock()
	s.tcp.conns--
	s.tcp.mu.Unlock()
}

// ServeTCP accepts connections on ln until it is closed or the server is,
// serving each in its own goroutine; it returns ErrServerClosed, or ln's
// error. A TLS listener (coaps+tcp) is served the same way. The bounds on
// connections (Options.MaxConns, IdleTimeout, FrameTimeout) hold over
// every listener together.
func (s *Server) ServeTCP(ln net.Listener) error {
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
			return err
		}
		tr := TCP
		if _, ok := c.(interface{ ConnectionState() tls.ConnectionState }); ok {
			tr = TLS
		}
		if s.draining.Load() {
			s.obs.Refused(tr, "draining")
			c.Close()
			continue
		}
		if !s.admit() {
			s.log.Debug("fileserver: too many connections, one refused", "from", c.RemoteAddr(), "max", s.maxConns)
			s.obs.Refused(tr, "max_conns")
			c.Close()
			continue
		}
		if !s.track(c) {
			s.release()
			c.Close()
			return ErrServerClosed
		}
		go func() {
			defer s.untrack(c)
			defer s.release()
			defer c.Close()
			if err := s.serveConn(c, tr); err != nil && !s.isClosed() {
				s.log.Debug("fileserver: connection ended", "from", c.RemoteAddr(), "err", err)
			}
		}()
	}
}

// Why serveConn closed a connection.
var (
	errIdle         = errors.New("idle for longer than IdleTimeout")
	errFrameTimeout = errors.New("a frame not whole within FrameTimeout")
)

// after returns the deadline d after t, none (the zero time) when d is
// negative.
func after(t time.Time, d time.Duration) time.Time {
	if d < 0 {
		return time.Time{}
	}
	return t.Add(d)
}

// earlier returns the earlier of two deadlines, the zero time being none.
func earlier(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// serveConn runs one CoAP-over-TCP connection: CSM first, then requests.
func (s *Server) serveConn(c net.Conn, tr Transport) error {
	var (
		bufs    = s.getBufs() // nil while idle
		tiny    = make([]byte, 1)
		peerMax = coap.DefaultMaxMessageSize
		bert    = false
		last    = time.Now() // when the last whole frame came
		begun   time.Time    // when the first byte of a partial frame came
	)
	defer func() {
		if bufs != nil {
			bufs.framer.Reset() // a partial frame ends with its connection
			s.putBufs(bufs)
		}
	}()
	write := func(b []byte) error {
		c.SetWriteDeadline(after(time.Now(), s.frameTimeout))
		_, err := c.Write(b)
		return err
	}
	// Our CSM: the largest request we take, and BERT on offer. Over TLS,
	// writing it runs the handshake, whose reads the read deadline bounds.
	c.SetReadDeadline(after(time.Now(), s.frameTimeout))
	resp := bufs.resp
	csm := &resp.m
	csm.Code, csm.Token, csm.Payload = coap.CSM, nil, nil
	csm.Options, resp.optBuf = coap.AppendUint(csm.Options[:0], resp.optBuf[:0], coap.MaxMessageSize, tcpMaxRequest)
	csm.Options = csm.Options.Add(coap.Option{ID: coap.BlockWiseTransfer})
	bufs.out, _ = coap.AppendTCP(bufs.out[:0], csm)
	err := write(bufs.out)
	if tc, ok := c.(interface{ ConnectionState() tls.ConnectionState }); ok {
		hsErr := err
		if hsErr == nil && !tc.ConnectionState().HandshakeComplete {
			hsErr = errors.New("TLS handshake not complete")
		}
		s.obs.Handshake(tr, c, hsErr)
	}
	if err != nil {
		return err
	}
	var identity string
	if tr == TLS && s.peerIdentity != nil {
		identity = s.peerIdentity(c)
	}
	s.obs.Conn(tr, c, true)
	defer s.obs.Conn(tr, c, false)
	tk := s.newTracker(tr, identity)
	defer tk.close()
	for {
		if bufs != nil {
			ok, err := bufs.framer.Next(&bufs.req)
			if err != nil {
				return err
			}
			if ok {
				last = time.Now()
				begun = last // what follows in the buffer, if anything, came now at the latest
				more, err := s.serveFrame(c, bufs, tk, &peerMax, &bert, write)
				if err != nil || !more {
					return err
				}
				continue
			}
		}
		partial := bufs != nil && bufs.framer.Buffered() > 0
		var deadline time.Time
		switch {
		case partial:
			deadline = after(begun, s.frameTimeout)
		case bufs != nil:
			deadline = earlier(after(last, s.idleTimeout), time.Now().Add(bufferLinger))
		default:
			deadline = after(last, s.idleTimeout)
		}
		c.SetReadDeadline(deadline)
		if bufs == nil {
			n, err := c.Read(tiny)
			if n > 0 {
				begun = time.Now()
				bufs = s.getBufs()
				bufs.framer.Advance(copy(bufs.framer.Space(), tiny[:n]))
				continue
			}
			if isTimeout(err) {
				return errIdle
			}
			return err
		}
		n, err := c.Read(bufs.framer.Space())
		if n > 0 {
			if !partial {
				begun = time.Now()
			}
			bufs.framer.Advance(n)
			continue
		}
		idleAt := after(last, s.idleTimeout)
		switch {
		case !isTimeout(err):
			return err
		case partial:
			return errFrameTimeout
		case !idleAt.IsZero() && !deadline.Before(idleAt):
			return errIdle
		}
		// No byte for bufferLinger: the connection is idle, and gives
		// its buffers back until it is not.
		s.putBufs(bufs)
		bufs = nil
	}
}

// serveFrame answers the frame in bufs.req; more is false when the
// connection is to end (Release, Abort).
func (s *Server) serveFrame(c net.Conn, bufs *tcpBufs, tk *tracker, peerMax *int, bert *bool, write func([]byte) error) (more bool, err error) {
	req, resp := &bufs.req, bufs.resp
	m := &resp.m
	switch req.Code {
	case coap.CSM:
		if v, ok := coap.Uint(req.Options, coap.MaxMessageSize); ok && v >= 64 {
			*peerMax = int(v)
		}
		_, *bert = coap.Bytes(req.Options, coap.BlockWiseTransfer)
		return true, nil
	case coap.Ping:
		m.Code, m.Options, m.Payload = coap.Pong, m.Options[:0], nil
	case coap.Pong:
		return true, nil
	case coap.Release, coap.Abort:
		return false, nil
	default:
		lim := limits{maxPayload: min(s.maxBERT, max(16, *peerMax-128)), bert: *bert, tk: tk}
		if !*bert {
			lim.maxPayload = min(lim.maxPayload, 1024)
		}
		resp.of = nil
		s.handle(req, resp, lim, client{addr: c.RemoteAddr()})
	}
	m.Token = req.Token
	if bufs.out, err = coap.AppendTCP(bufs.out[:0], m); err != nil {
		return false, err
	}
	if len(bufs.out) > *peerMax {
		// Too large for the client even so: say so in a small frame.
		m.Code, m.Options, m.Payload = coap.RequestEntityTooLarge, m.Options[:0], nil
		bufs.out, _ = coap.AppendTCP(bufs.out[:0], m)
	}
	ended := false
	if m.Code != coap.Pong {
		ended = tk.sent(m, resp.of, resp.name, client{addr: c.RemoteAddr()}) // before it leaves (access.go)
		s.obs.Request(tk.tr, m.Code)
	}
	err = write(bufs.out)
	if ended {
		s.transferEnded()
	}
	return true, err
}
