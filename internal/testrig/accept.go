package testrig

import (
	"net"
	"sync/atomic"
)

// AcceptCounter is a listener that counts the connections Accept returned.
// Over a DTLS listener that hands out a connection once its handshake is
// done (dtlssock.Listen), that is the handshakes the server completed.
type AcceptCounter struct {
	net.Listener
	n atomic.Int32
}

// CountAccepts wraps ln.
func CountAccepts(ln net.Listener) *AcceptCounter { return &AcceptCounter{Listener: ln} }

// Accept implements net.Listener, counting.
func (l *AcceptCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// Accepted returns how many connections Accept returned.
func (l *AcceptCounter) Accepted() int { return int(l.n.Load()) }
