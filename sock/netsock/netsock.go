package netsock

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/sockkit"
)

// Socket is a sock.Socket over Go's net package, for UDP and TCP over IPv4
// and IPv6. It has every optional capability of package sock;
// sock.ReadNotifier on Linux only. Create it with New; the zero value is
// not usable.
type Socket struct {
	core sockkit.Core     // its Mu guards the fields below too
	udp  *net.UDPConn     // UDP socket, bound or connected
	tcp  *net.TCPConn     // connected TCP socket
	ln   *net.TCPListener // bound TCP socket
	gen  uint64           // bumped whenever the OS socket is replaced
	rn   notifier         // the sock.ReadNotifier function and its registration (Linux)

	sent, received atomic.Uint64
}

var (
	_ sock.Socket               = (*Socket)(nil)
	_ sock.Binder               = (*Socket)(nil)
	_ sock.Shutdowner           = (*Socket)(nil)
	_ sock.Associator           = (*Socket)(nil)
	_ sock.ByteCounter          = (*Socket)(nil)
	_ sock.BufferedDataReporter = (*Socket)(nil)
	_ sock.SyscallConner        = (*Socket)(nil)
	_ sock.EndpointPreferrer    = (*Socket)(nil)
)

// New returns a closed socket for network "udp", "udp4", "udp6", "tcp",
// "tcp4" or "tcp6" (the digit forces the family). cfg may be nil.
func New(network string, cfg *sock.Config) (*Socket, error) {
	s := &Socket{}
	if err := s.core.Init(network, cfg); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Socket) stream() bool { return s.core.Stream() }

// State implements sock.Socket.
func (s *Socket) State() sock.State { return s.core.State() }

// ReceiveTimeout implements sock.Socket.
func (s *Socket) ReceiveTimeout() time.Duration { return s.core.ReceiveTimeout() }

// SetReceiveTimeout implements sock.Socket.
func (s *Socket) SetReceiveTimeout(d time.Duration) { s.core.SetReceiveTimeout(d) }

// SetPreferredEndpoint implements sock.EndpointPreferrer.
func (s *Socket) SetPreferredEndpoint(p *sock.PreferredEndpoint) { s.core.SetPreferredEndpoint(p) }

// Connect implements sock.Socket. A bound socket connects from its bound
// address and port, to an address of its own family (a socket bound to a
// wildcard address may re-create itself in the other family on the same
// port); a connected or shut-down socket is replaced by a new one with a new
// ephemeral port. TCP tries each resolved address in turn while they
// refuse. Without a deadline on ctx, Connect gives up after
// sock.DefaultConnectTimeout.
func (s *Socket) Connect(ctx context.Context, host, port string) error {
	pol, resolver := s.core.Policy()
	err := sockkit.Connect(ctx, resolver, host, port, pol, func(ctx context.Context, to netip.AddrPort) error {
		return s.connectTo(ctx, to, pol.Bound)
	})
	if err != nil {
		return s.opError("connect", sockkit.UnresolvedAddr{Net: s.core.Network, Host: host, Port: port}, err)
	}
	s.core.Mu.Lock()
	s.core.Assoc.Hostname = host
	s.core.Mu.Unlock()
	return nil
}

// connectTo connects to one candidate, replacing the OS socket as needed.
func (s *Socket) connectTo(ctx context.Context, to, bound netip.AddrPort) error {
	s.core.Mu.Lock()
	// A bound UDP socket of the right family connects in place where the
	// platform allows it: same fd, same port, nothing lost in between.
	if canConnectInPlace && s.core.St == sock.StateBound && s.udp != nil && sock.FamilyOf(s.core.Assoc.Local.Addr()) == sock.FamilyOf(to.Addr()) {
		err := connectInPlace(s.udp, to)
		if err == nil {
			s.core.St = sock.StateConnected
			s.core.Assoc.Remote = to
		}
		s.core.Mu.Unlock()
		return sockkit.Normalize(err)
	}
	var laddr netip.AddrPort
	if s.core.St == sock.StateBound {
		laddr = bound
		if sock.FamilyOf(laddr.Addr()) != sock.FamilyOf(to.Addr()) {
			laddr = netip.AddrPortFrom(unspecified(sock.FamilyOf(to.Addr())), laddr.Port())
		}
	}
	s.releaseLocked() // the bound socket gives its port to the new one
	gen := s.gen      // changes if Close, Bind or Connect run meanwhile
	s.core.Mu.Unlock()

	var d net.Dialer
	network := s.core.Network + familyDigit(to.Addr())
	if laddr.IsValid() {
		d.Control = reuseAddr // the port just released; see listenLocked
		if s.stream() {
			d.LocalAddr = net.TCPAddrFromAddrPort(laddr)
		} else {
			d.LocalAddr = net.UDPAddrFromAddrPort(laddr)
		}
	}
	c, err := d.DialContext(ctx, network, to.String())
	s.core.Mu.Lock()
	defer s.core.Mu.Unlock()
	if err != nil {
		if laddr.IsValid() && s.gen == gen {
			// Put the bound socket back so a failed connect changes
			// nothing; if its port was taken meanwhile it stays closed.
			_ = s.listenLocked(bound)
		}
		return sockkit.Normalize(err)
	}
	if s.gen != gen {
		c.Close() // Close, Bind or another Connect ran meanwhile
		return net.ErrClosed
	}
	s.gen++
	switch c := c.(type) {
	case *net.UDPConn:
		s.udp = c
	case *net.TCPConn:
		s.tcp = c
	}
	s.core.St = sock.StateConnected
	s.core.Assoc.Remote = to
	s.core.Assoc.Local = addrPortOf(c.LocalAddr())
	s.watchLocked()
	return nil
}

// Bind implements sock.Binder. It binds with SO_REUSEADDR; a TCP socket
// listens.
func (s *Socket) Bind(ctx context.Context, host, port string) error {
	s.core.Mu.Lock()
	pol := sockkit.Policy{Only: s.core.Only, Prefer: s.core.Cfg.Prefer}
	resolver := s.core.Cfg.Resolver
	s.core.Mu.Unlock()
	at, err := sockkit.BindEndpoint(ctx, resolver, host, port, pol)
	if err != nil {
		return s.opError("bind", sockkit.UnresolvedAddr{Net: s.core.Network, Host: host, Port: port}, err)
	}
	s.core.Mu.Lock()
	defer s.core.Mu.Unlock()
	s.releaseLocked()
	s.core.Assoc.Hostname, s.core.Assoc.Remote = "", netip.AddrPort{}
	if err := s.listenLocked(at); err != nil {
		return s.opErrorLocked("bind", sockkit.UnresolvedAddr{Net: s.core.Network, Host: host, Port: port}, sockkit.Normalize(err))
	}
	return nil
}

// listenLocked creates a bound OS socket at a; the socket must be closed.
func (s *Socket) listenLocked(a netip.AddrPort) error {
	// SO_REUSEADDR only for a port asked for: on an ephemeral UDP port
	// Linux lets two sockets that both set it share the port, and two
	// clients connected to one server from one port receive each other's
	// datagrams.
	var lc net.ListenConfig
	if a.Port() != 0 {
		lc.Control = reuseAddr
	}
	network := s.core.Network + familyDigit(a.Addr())
	var (
		err   error
		laddr net.Addr
	)
	if s.stream() {
		var ln net.Listener
		if ln, err = lc.Listen(context.Background(), network, a.String()); err == nil {
			s.ln = ln.(*net.TCPListener)
			laddr = ln.Addr()
		}
	} else {
		var pc net.PacketConn
		if pc, err = lc.ListenPacket(context.Background(), network, a.String()); err == nil {
			s.udp = pc.(*net.UDPConn)
			laddr = pc.LocalAddr()
		}
	}
	if err != nil {
		return err
	}
	s.gen++
	s.core.St = sock.StateBound
	s.core.Assoc.Local = addrPortOf(laddr)
	s.watchLocked()
	return nil
}

// releaseLocked closes the OS socket, if any, keeping the object usable.
func (s *Socket) releaseLocked() error {
	s.unwatchLocked() // before the descriptor, and its number, can go
	var err error
	switch {
	case s.udp != nil:
		err = s.udp.Close()
	case s.tcp != nil:
		err = s.tcp.Close()
	case s.ln != nil:
		err = s.ln.Close()
	}
	if s.udp != nil || s.tcp != nil || s.ln != nil {
		s.gen++
	}
	s.udp, s.tcp, s.ln = nil, nil, nil
	s.core.St = sock.StateClosed
	s.core.Assoc.Local = netip.AddrPort{}
	return err
}

// Close implements sock.Socket.
func (s *Socket) Close() error {
	s.core.Mu.Lock()
	defer s.core.Mu.Unlock()
	err := s.releaseLocked()
	s.core.Assoc.Hostname, s.core.Assoc.Remote = "", netip.AddrPort{}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return s.opErrorLocked("close", nil, err)
	}
	return nil
}

// Shutdown implements sock.Shutdowner: shutdown(SHUT_RDWR) on the OS socket,
// which stays open, and any Receive blocked on it returns ErrShutdown.
func (s *Socket) Shutdown() error {
	s.core.Mu.Lock()
	defer s.core.Mu.Unlock()
	if s.core.St == sock.StateClosed {
		return s.opErrorLocked("shutdown", nil, net.ErrClosed)
	}
	s.core.St = sock.StateShutdown
	s.unwatchLocked() // nothing more to receive; Connect or Bind watches the next OS socket
	var (
		rc  syscall.RawConn
		err error
	)
	switch {
	case s.udp != nil:
		rc, err = s.udp.SyscallConn()
		s.udp.SetDeadline(aLongTimeAgo)
	case s.tcp != nil:
		rc, err = s.tcp.SyscallConn()
		s.tcp.SetDeadline(aLongTimeAgo)
	case s.ln != nil:
		rc, err = s.ln.SyscallConn()
		s.ln.SetDeadline(aLongTimeAgo)
	}
	if err == nil {
		err = shutdownRaw(rc)
	}
	if err != nil {
		return s.opErrorLocked("shutdown", nil, err)
	}
	return nil
}

// aLongTimeAgo is a deadline in the past, to wake blocked I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// Send implements sock.Socket.
func (s *Socket) Send(b []byte) error {
	s.core.Mu.Lock()
	c, gen, err := s.ioConnLocked(false)
	s.core.Mu.Unlock()
	if err != nil {
		return s.opError("send", nil, err)
	}
	n, err := c.Write(b)
	s.sent.Add(uint64(max(n, 0)))
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return s.opError("send", nil, s.ioError(gen, err))
	}
	return nil
}

// ioConnLocked returns the connection Send and Receive use, or why there is
// none. A bound UDP socket can receive from anyone but has no peer to send to.
func (s *Socket) ioConnLocked(receive bool) (net.Conn, uint64, error) {
	switch s.core.St {
	case sock.StateClosed:
		return nil, 0, net.ErrClosed
	case sock.StateShutdown:
		return nil, 0, sock.ErrShutdown
	}
	switch {
	case s.tcp != nil:
		return s.tcp, s.gen, nil
	case s.udp != nil && (s.core.St == sock.StateConnected || receive):
		return s.udp, s.gen, nil
	}
	return nil, 0, sock.ErrNotConnected
}

// ioError explains an I/O error, given the OS socket generation the I/O ran
// on: a shutdown or close that raced the call is reported as such.
func (s *Socket) ioError(gen uint64, err error) error {
	s.core.Mu.Lock()
	defer s.core.Mu.Unlock()
	return s.ioErrorLocked(gen, err)
}

// receiveError is ioError for Receive. The error says the queue is empty
// (a timeout) or held an error, so the sock.ReadNotifier registration is
// re-armed.
func (s *Socket) receiveError(gen uint64, err error) error {
	s.core.Mu.Lock()
	defer s.core.Mu.Unlock()
	s.rearmLocked(gen)
	return s.ioErrorLocked(gen, err)
}

func (s *Socket) ioErrorLocked(gen uint64, err error) error {
	switch {
	case s.core.St == sock.StateShutdown && s.gen == gen:
		return sock.ErrShutdown
	case s.gen != gen || s.core.St == sock.StateClosed:
		return net.ErrClosed
	}
	return sockkit.Normalize(err) // nil stays nil
}

// Receive implements sock.Socket.
func (s *Socket) Receive(b []byte) (int, error) {
	s.core.Mu.Lock()
	c, gen, err := s.ioConnLocked(true)
	timeout := s.core.Timeout
	if err == nil {
		switch {
		case timeout < 0:
			err = c.SetReadDeadline(time.Time{})
		case timeout == 0:
			err = c.SetReadDeadline(time.Time{}) // poll below, without waiting
		default:
			err = c.SetReadDeadline(time.Now().Add(timeout))
		}
	}
	s.core.Mu.Unlock()
	if err != nil {
		return 0, s.opError("receive", nil, err)
	}

	var n int
	if timeout == 0 {
		n, err = pollRaw(c, b, !s.stream())
	} else if u, ok := c.(*net.UDPConn); ok {
		n, err = readDatagram(u, b)
	} else {
		n, err = c.Read(b)
		if err == io.EOF {
			// A peer's orderly close reads as 0 bytes, unless it is our
			// own Shutdown that ended the stream.
			if err = s.ioError(gen, nil); err == nil {
				n = 0
			}
		}
	}
	if n < 0 {
		n = 0 // an error from recvmsg can come with n == -1
	}
	s.received.Add(uint64(n))
	if err != nil && err != sock.ErrMsgSize {
		err = s.receiveError(gen, err)
	}
	if err != nil {
		return n, s.opError("receive", nil, err)
	}
	return n, nil
}

// InnerMTU implements sock.Socket: the kernel's path MTU for a connected UDP
// socket, less 28 (IPv4) or 48 (IPv6) bytes of headers; 548 or 1232 when
// the kernel cannot tell. TCP returns ErrNotSupported.
func (s *Socket) InnerMTU() (int, error) {
	if s.stream() {
		return 0, sock.ErrNotSupported
	}
	s.core.Mu.Lock()
	defer s.core.Mu.Unlock()
	if s.udp == nil {
		return 0, s.opErrorLocked("get inner MTU", nil, net.ErrClosed)
	}
	fam := sock.FamilyOf(s.core.Assoc.Local.Addr())
	if s.core.Assoc.Remote.IsValid() {
		fam = sock.FamilyOf(s.core.Assoc.Remote.Addr())
	}
	hdr, fallback := 28, 548
	if fam == sock.IPv6 {
		hdr, fallback = 48, 1232
	}
	if mtu, ok := pathMTU(s.udp, fam); ok && mtu > hdr {
		return mtu - hdr, nil
	}
	return fallback, nil
}

// Association implements sock.Associator.
func (s *Socket) Association() sock.Association { return s.core.Association() }

// BytesSent implements sock.ByteCounter.
func (s *Socket) BytesSent() uint64 { return s.sent.Load() }

// BytesReceived implements sock.ByteCounter.
func (s *Socket) BytesReceived() uint64 { return s.received.Load() }

// HasBufferedData implements sock.BufferedDataReporter: a plain socket holds no
// data of its own, so it is always false.
func (s *Socket) HasBufferedData() bool { return false }

// SyscallConn implements sock.SyscallConner.
func (s *Socket) SyscallConn() (syscall.RawConn, error) {
	s.core.Mu.Lock()
	defer s.core.Mu.Unlock()
	switch {
	case s.udp != nil:
		return s.udp.SyscallConn()
	case s.tcp != nil:
		return s.tcp.SyscallConn()
	case s.ln != nil:
		return s.ln.SyscallConn()
	}
	return nil, net.ErrClosed
}

// opError wraps err as a *net.OpError naming the operation and addresses.
func (s *Socket) opError(op string, addr net.Addr, err error) error {
	s.core.Mu.Lock()
	defer s.core.Mu.Unlock()
	return s.opErrorLocked(op, addr, err)
}

func (s *Socket) opErrorLocked(op string, addr net.Addr, err error) error {
	return sockkit.OpError(op, s.core.Network, s.core.Assoc.Local, s.core.Assoc.Remote, addr, err)
}

func addrPortOf(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	case *net.TCPAddr:
		ap = a.AddrPort()
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func unspecified(f sock.Family) netip.Addr {
	if f == sock.IPv6 {
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}

func familyDigit(a netip.Addr) string {
	if sock.FamilyOf(a) == sock.IPv4 {
		return "4"
	}
	return "6"
}
