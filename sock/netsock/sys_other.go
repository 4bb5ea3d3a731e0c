//go:build !linux

package netsock

import (
	"github.com/tether-iot/tether/sock"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// Outside Linux, NetSocket runs on the portable parts of package net only:
// shutdown is the flag and a past deadline, a bound UDP socket connecting is
// replaced by one dialled from the same port, and the path MTU is unknown
// (the family's safe default is used).

const canConnectInPlace = false

func reuseAddr(_, _ string, _ syscall.RawConn) error { return nil }

func connectInPlace(*net.UDPConn, netip.AddrPort) error { return sock.ErrNotSupported }

func shutdownRaw(syscall.RawConn) error { return nil }

func pollRaw(c net.Conn, b []byte, datagram bool) (int, error) {
	if err := c.SetReadDeadline(time.Now().Add(time.Millisecond)); err != nil {
		return 0, err
	}
	if u, ok := c.(*net.UDPConn); ok && datagram {
		return readDatagram(u, b)
	}
	return c.Read(b)
}

func pathMTU(*net.UDPConn, sock.Family) (int, bool) { return 0, false }
