package lwm2mtest

import (
	"context"
	"crypto/tls"
	"errors"
	"math/rand/v2"
	"net"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/coap/peer"
)

// tcpMaxMessage is the largest frame a device may send over TCP, what
// the Server's CSM advertises: a Register of many objects fits whole.
const tcpMaxMessage = 16 << 10

// tlsHandshakeTimeout bounds a TLS handshake, so a connection that never
// completes one does not keep its goroutine.
const tlsHandshakeTimeout = 10 * time.Second

// NewTCPServer serves LwM2M over CoAP over TCP (RFC 8323, coap+tcp) on ln
// at once, in goroutines that Close stops; Close closes ln and every
// connection. With Options.TLS it serves TLS over ln (coaps+tcp). Each
// connection is one device's: a coap/peer.Stream with its own reader.
// Options.DTLS is refused.
func NewTCPServer(ln net.Listener, opts *Options) (*Server, error) {
	if ln == nil {
		return nil, errors.New("lwm2mtest: NewTCPServer needs a Listener")
	}
	if opts != nil && opts.DTLS != nil {
		return nil, errors.New("lwm2mtest: Options.DTLS is for datagrams (NewServer); over TCP give Options.TLS")
	}
	s, err := newServer(opts)
	if err != nil {
		return nil, err
	}
	s.stream = true
	s.pc = newCountingConn(nil, s.opts.MaxClients)
	s.ln = &countingListener{Listener: ln, pc: s.pc}
	if s.opts.TLS != nil {
		s.ln = tls.NewListener(s.ln, s.opts.TLS)
	}
	s.wg.Add(1)
	go s.acceptTCP()
	return s, nil
}

// acceptTCP takes the TCP (or TLS) connections: each is a client with its
// reader.
func (s *Server) acceptTCP() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if !s.isClosed() && temporary(err) {
				continue
			}
			return
		}
		cl := &client{nc: nc, addr: nc.RemoteAddr(), secure: s.opts.TLS != nil}
		s.mu.Lock()
		if s.done {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[cl] = struct{}{}
		var rng *rand.Rand
		if s.opts.Seed != 0 {
			s.seq++
			rng = rand.New(rand.NewPCG(s.opts.Seed, s.seq))
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveStream(cl, rng)
	}
}

// serveStream runs one connection: the TLS handshake if any, the Stream
// (which sends the Server's CSM), and its reader until the connection
// ends.
func (s *Server) serveStream(cl *client, rng *rand.Rand) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, cl)
		p := cl.peer
		s.mu.Unlock()
		if p != nil {
			p.Close()
		}
		_ = cl.nc.Close()
	}()
	nc := cl.nc
	if tc, ok := cl.nc.(*tls.Conn); ok {
		ctx, cancel := context.WithTimeout(context.Background(), tlsHandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			s.log.Debug("lwm2mtest: TLS handshake failed", "addr", cl.addr, "err", err)
			return
		}
		s.mu.Lock()
		s.stats.Handshakes++
		s.mu.Unlock()
	}
	st, err := peer.NewStream(func(b []byte) error { _, err := nc.Write(b); return err }, &peer.StreamConfig{
		Handler:        func(req *coap.Message) coap.Message { return s.handle(cl, req) },
		OnResponse:     func(m *coap.Message) bool { return s.onResponse(cl, m) },
		MaxMessageSize: tcpMaxMessage,
		Timeout:        s.opts.Params.MaxTransmitWait(),
		Rand:           rng,
		Logger:         s.opts.Logger,
	})
	if err != nil {
		s.log.Debug("lwm2mtest: sending the CSM", "addr", cl.addr, "err", err)
		return
	}
	s.mu.Lock()
	cl.peer = st
	done := s.done
	s.mu.Unlock()
	if done {
		return // Close ran before the peer was there to close
	}
	s.log.Debug("lwm2mtest: TCP connection", "addr", cl.addr, "tls", cl.secure)
	err = st.Serve(nc.Read)
	if !s.isClosed() {
		s.log.Debug("lwm2mtest: TCP connection ended", "addr", cl.addr, "err", err)
	}
}

// countingListener counts the bytes of the connections it accepts, below
// TLS if any (its records are counted), in the Server's totals and by
// remote address. There are no datagrams to count.
type countingListener struct {
	net.Listener
	pc *countingConn
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countedStream{Conn: c, pc: l.pc}, nil
}

type countedStream struct {
	net.Conn
	pc *countingConn
}

func (c *countedStream) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.pc.count(c.RemoteAddr(), func(k *counts) { k.bIn += int64(n) })
	}
	return n, err
}

// Write counts before writing, so that the other side never sees bytes
// before the counters do; what was not written is taken back.
func (c *countedStream) Write(b []byte) (int, error) {
	c.pc.count(c.RemoteAddr(), func(k *counts) { k.bOut += int64(len(b)) })
	n, err := c.Conn.Write(b)
	if n < len(b) {
		c.pc.count(c.RemoteAddr(), func(k *counts) { k.bOut -= int64(len(b) - n) })
	}
	return n, err
}
