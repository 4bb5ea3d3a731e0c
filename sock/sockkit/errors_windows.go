//go:build windows

package sockkit

import (
	"golang.org/x/sys/windows"

	"github.com/tether-iot/tether/sock"
)

// Go on Windows reports Winsock's own numbers, which do not match package
// syscall's ECONNREFUSED and the others.
func init() {
	osErrors = append(osErrors, []struct{ errno, sentinel error }{
		{windows.WSAECONNREFUSED, sock.ErrConnRefused},
		{windows.WSAEMSGSIZE, sock.ErrMsgSize},
		{windows.WSAEADDRNOTAVAIL, sock.ErrAddrNotAvail},
	}...)
}
