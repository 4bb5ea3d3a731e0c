//go:build unix

package netsock

import (
	"github.com/tether-iot/tether/sock"
	"net"

	"golang.org/x/sys/unix"
)

// readDatagram reads one datagram into b; the kernel's MSG_TRUNC flag says
// it was longer than b, which is ErrMsgSize with b filled.
func readDatagram(u *net.UDPConn, b []byte) (int, error) {
	n, _, flags, _, err := u.ReadMsgUDPAddrPort(b, nil)
	if err == nil && flags&unix.MSG_TRUNC != 0 {
		err = sock.ErrMsgSize
	}
	return n, err
}
