//go:build !unix && !windows

package netsock

import "net"

// readDatagram reads one datagram into b. Where the platform reports no
// truncation (plan9, js, wasip1), a datagram longer than b is cut short
// without ErrMsgSize.
func readDatagram(u *net.UDPConn, b []byte) (int, error) { return u.Read(b) }
