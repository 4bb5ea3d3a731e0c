package netsock

import (
	"errors"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/sockkit"
	"net"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// canConnectInPlace: Linux connects a bound UDP socket with connect(2).
const canConnectInPlace = true

// reuseAddr sets SO_REUSEADDR, as the reference does on bind, so a reconnect
// can take the local port of the socket it replaces.
func reuseAddr(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	})
	return errors.Join(err, serr)
}

// connectInPlace connects a bound UDP socket to a peer without replacing its
// file descriptor, so the local port cannot be lost in between.
func connectInPlace(c *net.UDPConn, to netip.AddrPort) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var sa unix.Sockaddr
	if a := to.Addr(); a.Is4() {
		sa = &unix.SockaddrInet4{Port: int(to.Port()), Addr: a.As4()}
	} else {
		sa6 := &unix.SockaddrInet6{Port: int(to.Port()), Addr: a.As16()}
		if z := a.Zone(); z != "" {
			if ifi, err := net.InterfaceByName(z); err == nil {
				sa6.ZoneId = uint32(ifi.Index)
			}
		}
		sa = sa6
	}
	var cerr error
	if err := rc.Control(func(fd uintptr) { cerr = unix.Connect(int(fd), sa) }); err != nil {
		return err
	}
	if cerr != nil {
		return wrapSyscall("connect", cerr)
	}
	return nil
}

// shutdownRaw is shutdown(fd, SHUT_RDWR). A datagram socket that is not
// connected has nothing to shut down (ENOTCONN), which is not an error here.
func shutdownRaw(rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Shutdown(int(fd), unix.SHUT_RDWR) }); err != nil {
		return err
	}
	if serr != nil && serr != unix.ENOTCONN {
		return wrapSyscall("shutdown", serr)
	}
	return nil
}

// pollRaw reads what is queued on c without waiting; nothing queued is
// ErrTimeout. On a datagram socket a truncated datagram is ErrMsgSize.
func pollRaw(c net.Conn, b []byte, datagram bool) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, sock.ErrNotSupported
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var (
		n    int
		rerr error
	)
	err = rc.Read(func(fd uintptr) bool {
		if datagram {
			var flags int
			n, _, flags, _, rerr = unix.Recvmsg(int(fd), b, nil, unix.MSG_DONTWAIT)
			if rerr == nil && flags&unix.MSG_TRUNC != 0 {
				rerr = sock.ErrMsgSize
			}
		} else {
			n, rerr = unix.Read(int(fd), b)
		}
		return true // never wait
	})
	if err != nil {
		return 0, err
	}
	if n < 0 {
		n = 0
	}
	if rerr == unix.EAGAIN {
		return 0, sock.ErrTimeout
	}
	if rerr != nil && rerr != sock.ErrMsgSize {
		return n, wrapSyscall("recvmsg", rerr)
	}
	return n, rerr
}

// pathMTU asks the kernel for the path MTU of a connected UDP socket.
func pathMTU(c *net.UDPConn, fam sock.Family) (int, bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var (
		mtu  int
		merr error
	)
	err = rc.Control(func(fd uintptr) {
		if fam == sock.IPv6 {
			mtu, merr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU)
		} else {
			mtu, merr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU)
		}
	})
	return mtu, err == nil && merr == nil && mtu > 0
}

func wrapSyscall(call string, err error) error {
	return sockkit.Normalize(os.NewSyscallError(call, err))
}
