package lwm2m

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tether-iot/tether/coap/peer"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/dtlssock"
	"github.com/tether-iot/tether/sock/netsock"
	"github.com/tether-iot/tether/sock/tlssock"
)

// conn is the registration connection: one socket to the server (a DTLS
// socket over a raw one for coaps) and the CoAP peer over it. The socket
// object lives as long as the client, so that a DTLS session outlives
// offline periods; each connect starts a reader and a fresh peer.
type conn struct {
	to   *target // the server the socket is for
	s    sock.Socket
	dtls *dtlssock.Socket // nil for NoSec
	p    peer.Exchanger   // dp over UDP, a peer.Stream over TCP
	dp   *peer.Peer       // the datagram peer, nil over TCP
	done chan struct{}    // closed when the reader goroutine ends
	// rn is the socket's ReadNotifier, when it has one, and nr the
	// reader it starts: no goroutine reads an idle socket.
	rn sock.ReadNotifier
	nr *notifiedReader
	// input is held by the reader while the peer takes a datagram in
	// and answers it, and by disconnect: an answer the handler made (a
	// Bootstrap-Finish's, an Execute's that asks for a bootstrap) is sent
	// before the connection goes.
	input    sync.Mutex
	lastPort string // the local port of the last connection
	up       bool
	// lost is set when a TCP stream ended under the client (the server
	// closed it, or it failed), not by disconnect: the machine then
	// connects again, since the server can no longer reach it.
	lost  atomic.Bool
	began time.Time // when the TCP stream began (the loop's)
}

// connect connects (or reconnects) the socket and starts its reader. It
// reports whether the server still knows the session: a DTLS session that
// resumed (no full handshake). A NoSec connection never does.
func (c *Client) connect(ctx context.Context) (resumed bool, err error) {
	k := &c.conn
	t := c.dm
	if c.reg.state == Bootstrapping {
		t = c.bs
	}
	if k.up && k.to == t {
		return t.secure(), nil
	}
	if k.to != t && k.s != nil {
		// Another server: another socket (and DTLS session).
		c.disconnect(true)
		k.s, k.dtls, k.lastPort = nil, nil, ""
	}
	k.to = t
	c.overTCP.Store(t.tcp)
	if k.s == nil {
		newSocket := c.cfg.NewSocket
		if newSocket == nil {
			newSocket = func(network string) (sock.Socket, error) { return netsock.New(network, nil) }
		}
		network := "udp"
		if t.tcp {
			network = "tcp"
		}
		raw, err := newSocket(network)
		if err != nil {
			return false, err
		}
		k.s = raw
		switch {
		case t.dtls != nil:
			k.dtls = dtlssock.New(raw, t.dtls)
			k.s = k.dtls
		case t.tls != nil:
			k.s = tlssock.New(raw, t.tls)
		}
	}
	if !t.secure() && !t.tcp && k.lastPort != "" && k.s.State() != sock.StateConnected {
		// Come back on the same local port if it is free, so a NAT's
		// binding (and the server's idea of our address) may still hold.
		_ = sock.Bind(ctx, k.s, "", k.lastPort)
	}
	if err := k.s.Connect(ctx, t.host, t.port); err != nil {
		return false, err
	}
	if port, err := sock.AssociationOf(k.s).LocalPort(); err == nil {
		k.lastPort = port
	}
	resumed = k.dtls != nil && k.dtls.SessionResumed()
	if k.dtls != nil {
		n := k.dtls.FullHandshakes()
		c.setStatus(func(s *Status) { s.Handshakes = n })
	}
	k.rn, k.nr, k.dp, k.done = nil, nil, nil, nil
	if t.tcp {
		return false, c.startStream()
	}
	k.dp = peer.New(k.s.Send, &peer.Config{
		Handler: c.serve,
		OnReset: c.observerReset,
		Params:  c.params,
		Logger:  c.log,
	})
	k.p = k.dp
	k.up = true
	if rn, ok := k.s.(sock.ReadNotifier); ok {
		k.rn = rn
		k.nr = &notifiedReader{s: k.s, in: c.inbox()}
		k.s.SetReceiveTimeout(0)
		rn.NotifyRead(k.nr.kick)
		return resumed, nil
	}
	k.done = make(chan struct{})
	go reader(k.s, c.inbox(), k.done)
	return resumed, nil
}

// startStream starts CoAP over the TCP connection just made (RFC 8323:
// our CSM first, then requests both ways, matched by token) and its
// reader. A new connection is a new session to the server: the client
// registers again after it, as after a NoSec reconnect.
func (c *Client) startStream() error {
	k := &c.conn
	st, err := peer.NewStream(k.s.Send, &peer.StreamConfig{
		Handler: c.serve,
		// Room for the largest request the client takes whole, and
		// its options.
		MaxMessageSize: max(1152, c.cfg.MaxRequestSize+256),
		Timeout:        c.params.MaxTransmitWait(),
		Logger:         c.log,
	})
	if err != nil {
		_ = k.s.Close()
		return err
	}
	k.p = st
	k.up = true
	k.lost.Store(false)
	k.began = time.Now()
	done, s, began := make(chan struct{}), k.s, k.began
	k.done = done
	s.SetReceiveTimeout(-1)
	go func() {
		defer close(done)
		if err := st.Serve(s.Receive); !errors.Is(err, peer.ErrClosed) {
			// Not our Close: the server's end, or a failure. A server
			// that closes each connection at once is not asked again
			// sooner than RetryDelay after the last (connectionLost).
			k.lost.Store(true)
			time.AfterFunc(time.Until(began.Add(c.cfg.RetryDelay)), c.kick)
		}
	}()
	return nil
}

// disconnect ends the connection: shut down (keeping the DTLS session and
// the association) or closed for good.
func (c *Client) disconnect(close bool) {
	k := &c.conn
	if k.s == nil {
		return
	}
	if k.up && k.rn != nil {
		k.rn.NotifyRead(nil) // no reader starts after this
	}
	k.input.Lock()
	if k.up {
		k.p.Close()
	}
	if close {
		_ = k.s.Close()
	} else if err := sock.Shutdown(k.s); err != nil {
		_ = k.s.Close()
	}
	k.input.Unlock()
	switch {
	case k.up && k.nr != nil:
		k.nr.wg.Wait()
	case k.up:
		<-k.done
	}
	k.up = false
}

// reader hands every datagram to the peer until the socket is shut down
// or closed. A datagram longer than the buffer (an MTU's worth) is a
// request the server should send block-wise: the peer answers it 4.13,
// with Size1 the largest request body taken (maxRequest).
func reader(s sock.Socket, in inbox, done chan<- struct{}) {
	defer close(done)
	buf := make([]byte, 1500)
	s.SetReceiveTimeout(-1)
	pause := time.Duration(0) // after errors in a row, so a socket that keeps failing does not spin
	for {
		n, err := s.Receive(buf)
		switch {
		case in.take(buf[:n], err):
			pause = 0
		case sock.IsTimeout(err):
			// A socket that times out anyway.
		case errors.Is(err, net.ErrClosed), errors.Is(err, sock.ErrShutdown):
			return
		default:
			// An ICMP error on a connected UDP socket (the server is
			// down): the exchanges in flight time out on their own.
			if s.State() != sock.StateConnected {
				return
			}
			pause = min(max(2*pause, time.Millisecond), 100*time.Millisecond)
			time.Sleep(pause)
		}
	}
}

// inbox is where a reader hands what it receives: the datagram peer,
// under the connection's input lock.
type inbox struct {
	p          *peer.Peer
	input      *sync.Mutex
	maxRequest uint32 // Size1 of the 4.13 to a datagram too large (InputTruncated)
}

func (c *Client) inbox() inbox {
	return inbox{p: c.conn.dp, input: &c.conn.input, maxRequest: uint32(c.cfg.MaxRequestSize)}
}

// take hands the peer what a Receive gave, a datagram or one too long for
// the buffer, and reports whether it was either.
func (in inbox) take(b []byte, err error) bool {
	switch {
	case err == nil:
		in.input.Lock()
		in.p.Input(b)
		in.input.Unlock()
	case errors.Is(err, sock.ErrMsgSize):
		in.input.Lock()
		in.p.InputTruncated(b, in.maxRequest)
		in.input.Unlock()
	default:
		return false
	}
	return true
}

// notifiedReader reads a socket that says when data arrives: a goroutine
// runs only while datagrams wait, handing each to the peer, and ends when
// none is left (a kick while it ends has it look once more).
type notifiedReader struct {
	s  sock.Socket
	in inbox

	run kicks
	wg  sync.WaitGroup
}

// readBufs are the readers' buffers, an MTU's worth: held while reading,
// not while idle.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 1500); return &b }}

// kick is the socket's notification.
func (r *notifiedReader) kick() {
	if r.run.kick() {
		r.wg.Add(1)
		go r.read()
	}
}

func (r *notifiedReader) read() {
	defer r.wg.Done()
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	for {
		r.run.look()
		if !r.readAll(buf) {
			return // the connection is going: the next one has its own reader
		}
		if !r.run.done() {
			return
		}
	}
}

// readAll hands every waiting datagram to the peer, and reports false
// when the socket is shut down or closed.
func (r *notifiedReader) readAll(buf []byte) bool {
	for {
		n, err := r.s.Receive(buf)
		switch {
		case r.in.take(buf[:n], err):
		case errors.Is(err, net.ErrClosed), errors.Is(err, sock.ErrShutdown):
			return false
		default:
			// Nothing more now, or an ICMP error on a connected socket
			// (exchanges in flight time out on their own).
			return true
		}
	}
}

// exchangeCtx derives the context of an exchange that offline mode,
// Reconnect and stop may cut short.
func (c *Client) exchangeCtx(ctx context.Context) (context.Context, func()) {
	xctx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	c.cancel = cancel
	if c.interrupt.Load() > 0 {
		cancel() // an offline or reconnect command is on its way
	}
	c.mu.Unlock()
	return xctx, func() {
		c.mu.Lock()
		c.cancel = nil
		c.mu.Unlock()
		cancel()
	}
}
