// Package seclayer holds what tether's secure layers (sock/tlssock,
// sock/dtlssock) share about the session they keep over a raw socket: the
// connection I/O goes to and why there is none, the receive timeout, and
// the shape of their errors. Each layer keeps its own protocol's state
// beside it, under the same mutex.
//
// seclayer depends on packages sock and sockkit only.
package seclayer

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/sockkit"
)

// State is a secure layer's session state over its raw socket. Its zero
// value has no connection and a zero receive timeout; a layer sets Timeout
// when it makes one.
type State[C comparable] struct {
	// Mu guards the fields below, and the layer's own session fields
	// (what it resumed, what it buffered), so that a Connect, Shutdown or
	// Close changes them all at once.
	Mu sync.Mutex
	// Conn is the protocol's connection I/O goes to; the zero value (nil)
	// when there is none.
	Conn C
	// Shut is set by a layer's own Shutdown (one that keeps its session
	// over a raw socket that cannot shut down), and cleared by the next
	// Connect or Close.
	Shut bool
	// Timeout is the receive timeout (sock.Socket's).
	Timeout time.Duration
}

// Current returns the connection for I/O, or why there is none: the
// session is usable only while raw (the socket underneath) is connected
// and the layer was not shut down. sock.ErrShutdown after the layer's or
// the raw socket's Shutdown, net.ErrClosed when raw is closed,
// sock.ErrNotConnected otherwise.
func (s *State[C]) Current(raw sock.Socket) (C, error) {
	st := raw.State()
	s.Mu.Lock()
	defer s.Mu.Unlock()
	var none C
	switch {
	case s.Shut || st == sock.StateShutdown:
		return none, sock.ErrShutdown
	case st == sock.StateClosed:
		return none, net.ErrClosed
	case s.Conn == none || st != sock.StateConnected:
		return none, sock.ErrNotConnected
	}
	return s.Conn, nil
}

// ReceiveTimeout returns the receive timeout.
func (s *State[C]) ReceiveTimeout() time.Duration {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	return s.Timeout
}

// SetReceiveTimeout sets the receive timeout.
func (s *State[C]) SetReceiveTimeout(d time.Duration) {
	s.Mu.Lock()
	s.Timeout = d
	s.Mu.Unlock()
}

// OpError is the error of a layer's operation op on network netw ("tls",
// "dtls"): err itself when it is already the raw socket's error for the
// same operation, complete, and otherwise a *net.OpError around
// sockkit.Normalize(err).
func OpError(netw, op string, addr net.Addr, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == op {
		return err
	}
	return &net.OpError{Op: op, Net: netw, Addr: addr, Err: sockkit.Normalize(err)}
}
