package sock

import (
	"io"
	"net"
	"sync"
	"time"
)

// NetConn presents a connected stream Socket as a net.Conn, for libraries
// that take one (net/http's dialer, crypto/tls). Read is Receive, with the
// peer's orderly close as io.EOF; Write is Send. A read deadline bounds
// Receive; write deadlines are accepted and ignored, since Send does not
// wait for the peer. Close closes the socket.
func NetConn(s Socket) net.Conn { return &netConn{s: s} }

type netConn struct {
	s  Socket
	mu sync.Mutex
	rd time.Time
}

func (c *netConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	d := c.rd
	c.mu.Unlock()
	if d.IsZero() {
		c.s.SetReceiveTimeout(-1)
	} else {
		left := time.Until(d)
		if left <= 0 {
			return 0, &net.OpError{Op: "read", Net: "tcp", Err: ErrTimeout}
		}
		c.s.SetReceiveTimeout(left)
	}
	n, err := c.s.Receive(b)
	if n == 0 && err == nil && len(b) > 0 {
		return 0, io.EOF
	}
	return n, err
}

func (c *netConn) Write(b []byte) (int, error) {
	if err := c.s.Send(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (c *netConn) Close() error { return c.s.Close() }

func (c *netConn) LocalAddr() net.Addr {
	return net.TCPAddrFromAddrPort(AssociationOf(c.s).Local)
}

func (c *netConn) RemoteAddr() net.Addr {
	return net.TCPAddrFromAddrPort(AssociationOf(c.s).Remote)
}

func (c *netConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *netConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rd = t
	c.mu.Unlock()
	return nil
}

func (c *netConn) SetWriteDeadline(time.Time) error { return nil }
