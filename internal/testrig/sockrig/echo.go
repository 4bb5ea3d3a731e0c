// Package sockrig holds the test rigs of the socket layer: echo peers
// served until a test ends, a check that a socket's message comes back,
// and a raw socket that records what a layer over it sends. It is
// imported by tests only.
//
// It depends on the socket contract and its conformance suite (sock,
// sock/socktest) and on no socket: the tests of netsock, simnet and the
// (D)TLS layers use it, so it must not lean on any of them (the
// internal/layers test ranks it beside netsock and simnet). What needs no
// tether package at all belongs in testrig.
package sockrig

import (
	"net"
	"testing"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/socktest"
)

// EchoPackets serves pc as an echo peer (socktest.Echo) until the test
// ends: then it closes pc and waits for the peer to stop.
func EchoPackets(t testing.TB, pc net.PacketConn) {
	done := make(chan struct{})
	go func() { defer close(done); socktest.Echo(pc) }()
	t.Cleanup(func() { pc.Close(); <-done })
}

// EchoStreams serves ln as an echo peer (socktest.EchoStream) until the
// test ends: then it closes ln and what it accepted, and waits for the
// peer to stop. Over a DTLS listener each Read is one record, so every
// record comes back as one.
func EchoStreams(t testing.TB, ln net.Listener) {
	done := make(chan struct{})
	go func() { defer close(done); socktest.EchoStream(ln) }()
	t.Cleanup(func() { ln.Close(); <-done })
}

// EchoOnce sends msg on s, connected to an echo peer, and fails the test
// unless the next message s receives is msg.
func EchoOnce(t testing.TB, s sock.Socket, msg string) {
	t.Helper()
	if err := s.Send([]byte(msg)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	buf := make([]byte, len(msg)+64)
	n, err := s.Receive(buf)
	if err != nil || string(buf[:n]) != msg {
		t.Fatalf("Receive = %q, %v; want the echo of %q", buf[:n], err, msg)
	}
}
