//go:build windows

package sock

import (
	"errors"
	"net"

	"golang.org/x/sys/windows"
)

// readDatagram reads one datagram into b. Winsock reports a datagram longer
// than b as WSAEMSGSIZE, with b filled: ErrMsgSize.
func readDatagram(u *net.UDPConn, b []byte) (int, error) {
	n, _, _, _, err := u.ReadMsgUDPAddrPort(b, nil)
	if errors.Is(err, windows.WSAEMSGSIZE) {
		return len(b), ErrMsgSize
	}
	return n, err
}
