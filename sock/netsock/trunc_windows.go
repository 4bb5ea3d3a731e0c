//go:build windows

package netsock

import (
	"errors"
	"github.com/tether-iot/tether/sock"
	"net"

	"golang.org/x/sys/windows"
)

// readDatagram reads one datagram into b. Winsock reports a datagram longer
// than b as WSAEMSGSIZE, with b filled: ErrMsgSize.
func readDatagram(u *net.UDPConn, b []byte) (int, error) {
	n, _, _, _, err := u.ReadMsgUDPAddrPort(b, nil)
	if errors.Is(err, windows.WSAEMSGSIZE) {
		return len(b), sock.ErrMsgSize
	}
	return n, err
}
