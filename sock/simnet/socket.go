package simnet

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

// Socket is a sock.Socket on a simulated host. It has every optional
// capability of package sock except the OS handle (there is no OS socket):
// sock.As finds no sock.SyscallConner.
type Socket struct {
	host *Host
	core sockkit.Core // its Mu guards the fields below too
	ep   *endpoint    // UDP, bound or connected
	st   *stream      // TCP, connected
	ln   *Listener    // TCP, bound
	wake chan struct{}
	// notify is the sock.ReadNotifier function, installed on every
	// endpoint the socket gets.
	notify func()

	sent, received atomic.Uint64
}

var (
	_ sock.Socket               = (*Socket)(nil)
	_ sock.Binder               = (*Socket)(nil)
	_ sock.Shutdowner           = (*Socket)(nil)
	_ sock.Associator           = (*Socket)(nil)
	_ sock.ByteCounter          = (*Socket)(nil)
	_ sock.BufferedDataReporter = (*Socket)(nil)
	_ sock.EndpointPreferrer    = (*Socket)(nil)
	_ sock.ReadNotifier         = (*Socket)(nil)
)

// NotifyRead implements sock.ReadNotifier for UDP; a TCP socket ignores it.
func (s *Socket) NotifyRead(f func()) {
	s.core.Mu.Lock()
	s.notify = f
	ep := s.ep
	s.core.Mu.Unlock()
	if ep != nil {
		ep.setNotify(f)
	}
}

// NewSocket returns a closed socket on the host for network "udp", "udp4",
// "udp6", "tcp", "tcp4" or "tcp6". Names resolve through the network's DNS;
// cfg may be nil, and its Resolver is ignored.
func (h *Host) NewSocket(network string, cfg *sock.Config) (*Socket, error) {
	s := &Socket{host: h}
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

// Connect implements sock.Socket, with the same rules as netsock.Socket: a
// bound socket connects from its address and port, a connected or shut-down
// one is replaced, TCP tries the next address when one refuses.
func (s *Socket) Connect(ctx context.Context, host, port string) error {
	pol, _ := s.core.Policy() // simnet resolves through its network's DNS
	err := sockkit.Connect(ctx, s.host.net.DNS(), host, port, pol, func(ctx context.Context, to netip.AddrPort) error {
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

func (s *Socket) connectTo(ctx context.Context, to, bound netip.AddrPort) error {
	n := s.host.net
	if !s.stream() {
		s.core.Mu.Lock()
		defer s.core.Mu.Unlock()
		n.mu.Lock()
		src, ok := s.host.sourceAddrLocked(to.Addr())
		n.mu.Unlock()
		if !ok {
			return syscall.ENETUNREACH
		}
		if s.core.St != sock.StateBound || sock.FamilyOf(bound.Addr()) != sock.FamilyOf(to.Addr()) {
			local := netip.AddrPortFrom(src, 0)
			if s.core.St == sock.StateBound {
				local = netip.AddrPortFrom(unspecified(to.Addr()), bound.Port())
			}
			s.releaseLocked(false)
			n.mu.Lock()
			ep, err := n.bindUDPLocked(s.host, local)
			n.mu.Unlock()
			if err != nil {
				return err
			}
			s.attachLocked(ep, nil, nil)
		}
		n.mu.Lock()
		s.ep.peer = to
		n.mu.Unlock()
		s.core.Assoc.Local = s.ep.local
		if s.core.Assoc.Local.Addr().IsUnspecified() {
			s.core.Assoc.Local = netip.AddrPortFrom(src, s.core.Assoc.Local.Port())
		}
		s.core.St = sock.StateConnected
		s.core.Assoc.Remote = to
		return nil
	}

	s.core.Mu.Lock()
	local := netip.AddrPort{}
	if s.core.St == sock.StateBound {
		local = bound
		if sock.FamilyOf(local.Addr()) != sock.FamilyOf(to.Addr()) {
			local = netip.AddrPortFrom(unspecified(to.Addr()), local.Port())
		}
	} else {
		local = netip.AddrPortFrom(unspecified(to.Addr()), 0)
	}
	s.releaseLocked(false)
	wake := s.wake
	s.core.Mu.Unlock()

	st, err := n.dialTCP(ctx, s.host, local, to)
	s.core.Mu.Lock()
	defer s.core.Mu.Unlock()
	if err != nil {
		return err
	}
	if s.wake != wake || s.core.St != sock.StateClosed {
		st.close() // Close, Bind or another Connect ran meanwhile
		return net.ErrClosed
	}
	s.attachLocked(nil, st, nil)
	s.core.St = sock.StateConnected
	s.core.Assoc.Remote, s.core.Assoc.Local = to, st.local
	return nil
}

// attachLocked installs a new simulated OS socket.
func (s *Socket) attachLocked(ep *endpoint, st *stream, ln *Listener) {
	s.ep, s.st, s.ln = ep, st, ln
	s.wake = make(chan struct{})
	if ep != nil {
		ep.nmu.Lock()
		ep.notify = s.notify
		ep.nmu.Unlock()
	}
}

// releaseLocked closes the simulated OS socket, if any.
func (s *Socket) releaseLocked(forget bool) {
	switch {
	case s.ep != nil:
		s.host.net.unbind(s.ep)
	case s.st != nil:
		s.st.close()
	case s.ln != nil:
		s.ln.Close()
	}
	if s.wake != nil && !isClosed(s.wake) {
		close(s.wake)
	}
	s.ep, s.st, s.ln = nil, nil, nil
	s.wake = make(chan struct{}) // a fresh one for the next socket
	s.core.St = sock.StateClosed
	s.core.Assoc.Local = netip.AddrPort{}
	if forget {
		s.core.Assoc.Hostname, s.core.Assoc.Remote = "", netip.AddrPort{}
	}
}

// Bind implements sock.Binder. host must be an address of the host, or
// empty for the wildcard address.
func (s *Socket) Bind(ctx context.Context, host, port string) error {
	addr := sockkit.UnresolvedAddr{Net: s.core.Network, Host: host, Port: port}
	s.core.Mu.Lock()
	pol := sockkit.Policy{Only: s.core.Only, Prefer: s.core.Cfg.Prefer}
	s.core.Mu.Unlock()
	at, err := sockkit.BindEndpoint(ctx, s.host.net.DNS(), host, port, pol)
	if err != nil {
		return s.opError("bind", addr, err)
	}
	n := s.host.net
	s.core.Mu.Lock()
	defer s.core.Mu.Unlock()
	s.releaseLocked(true)
	n.mu.Lock()
	var (
		ep *endpoint
		ln *Listener
	)
	if s.stream() {
		ln, err = n.listenLocked(s.host, at)
	} else {
		ep, err = n.bindUDPLocked(s.host, at)
	}
	n.mu.Unlock()
	if err != nil {
		return s.opErrorLocked("bind", addr, err)
	}
	s.attachLocked(ep, nil, ln)
	s.core.St = sock.StateBound
	if ep != nil {
		s.core.Assoc.Local = ep.local
	} else {
		s.core.Assoc.Local = ln.addr
	}
	return nil
}

// Close implements sock.Socket.
func (s *Socket) Close() error {
	s.core.Mu.Lock()
	defer s.core.Mu.Unlock()
	s.releaseLocked(true)
	return nil
}

// Shutdown implements sock.Shutdowner: a stream sends its FIN; the endpoint
// stays bound, and blocked calls return sock.ErrShutdown.
func (s *Socket) Shutdown() error {
	s.core.Mu.Lock()
	defer s.core.Mu.Unlock()
	if s.core.St == sock.StateClosed {
		return s.opErrorLocked("shutdown", nil, net.ErrClosed)
	}
	s.core.St = sock.StateShutdown
	if !isClosed(s.wake) {
		close(s.wake) // before the FIN, whose answer must not read as EOF
	}
	if s.st != nil {
		s.st.out.write(s.host.net, nil, true)
	}
	return nil
}

// Send implements sock.Socket.
func (s *Socket) Send(b []byte) error {
	s.core.Mu.Lock()
	ep, st, remote, err := s.ioLocked(false)
	s.core.Mu.Unlock()
	if err != nil {
		return s.opError("send", nil, err)
	}
	if st != nil {
		if isClosed(st.closed) {
			return s.opError("send", nil, net.ErrClosed)
		}
		st.out.write(s.host.net, b, false)
	} else {
		select {
		case <-ep.refused:
			return s.opError("send", nil, sockkit.Mark(sock.ErrConnRefused, syscall.ECONNREFUSED))
		default:
		}
		if err := s.host.net.sendUDP(ep, remote, b); err != nil {
			return s.opError("send", nil, sockkit.Normalize(err))
		}
	}
	s.sent.Add(uint64(len(b)))
	return nil
}

func (s *Socket) ioLocked(receive bool) (*endpoint, *stream, netip.AddrPort, error) {
	switch s.core.St {
	case sock.StateClosed:
		return nil, nil, netip.AddrPort{}, net.ErrClosed
	case sock.StateShutdown:
		return nil, nil, netip.AddrPort{}, sock.ErrShutdown
	case sock.StateBound:
		if !receive || s.ep == nil {
			return nil, nil, netip.AddrPort{}, sock.ErrNotConnected
		}
	}
	return s.ep, s.st, s.core.Assoc.Remote, nil
}

// Receive implements sock.Socket.
func (s *Socket) Receive(b []byte) (int, error) {
	s.core.Mu.Lock()
	ep, st, _, err := s.ioLocked(true)
	wake, timeout := s.wake, s.core.Timeout
	s.core.Mu.Unlock()
	if err != nil {
		return 0, s.opError("receive", nil, err)
	}
	var expired <-chan struct{}
	if timeout >= 0 {
		d := newDeadline()
		d.set(time.Now().Add(timeout)) // zero: already passed, a poll
		defer d.set(time.Time{})
		expired = d.wait()
	}
	var n int
	if st != nil {
		n, err = st.in.read(b, stop{wake, errWake}, stop{st.closed, net.ErrClosed}, stop{expired, sock.ErrTimeout})
		if err == io.EOF {
			// A peer's orderly close reads as 0 bytes, unless our own
			// Shutdown (or Close) ended the stream.
			n, err = 0, nil
			if isClosed(wake) {
				err = errWake
			}
		}
	} else {
		n, err = receiveDatagram(ep, b, wake, expired)
	}
	s.received.Add(uint64(n))
	if errors.Is(err, errWake) {
		s.core.Mu.Lock()
		err = net.ErrClosed
		if s.core.St == sock.StateShutdown {
			err = sock.ErrShutdown
		}
		s.core.Mu.Unlock()
	}
	if err != nil {
		return n, s.opError("receive", nil, err)
	}
	return n, nil
}

// errWake marks a wait ended by Shutdown or Close; Receive says which.
var errWake = errors.New("woken")

func receiveDatagram(ep *endpoint, b []byte, wake, expired <-chan struct{}) (int, error) {
	for {
		// Queued data first, so a poll (expired already closed) sees it.
		if p, ok := ep.pop(); ok {
			return deliver(b, p)
		}
		select {
		case <-ep.ready:
			continue
		case <-expired:
			if p, ok := ep.pop(); ok {
				return deliver(b, p)
			}
			return 0, sock.ErrTimeout
		default:
		}
		return waitDatagram(ep, b, wake, expired)
	}
}

// waitDatagram waits for a datagram, or for what ends the wait.
func waitDatagram(ep *endpoint, b []byte, wake, expired <-chan struct{}) (int, error) {
	select {
	case <-ep.ready:
		return receiveDatagram(ep, b, wake, expired)
	case <-ep.refused:
		return 0, sockkit.Mark(sock.ErrConnRefused, syscall.ECONNREFUSED)
	case <-wake:
		return 0, errWake
	case <-ep.done:
		return 0, net.ErrClosed
	case <-expired:
		return 0, sock.ErrTimeout
	}
}

func deliver(b []byte, p packet) (int, error) {
	n := copy(b, p.data)
	if n < len(p.data) {
		return n, sock.ErrMsgSize
	}
	return n, nil
}

// InnerMTU implements sock.Socket: the smaller link MTU of the two hosts
// less 28 (IPv4) or 48 (IPv6) bytes; a bound socket assumes 1500.
func (s *Socket) InnerMTU() (int, error) {
	if s.stream() {
		return 0, sock.ErrNotSupported
	}
	s.core.Mu.Lock()
	defer s.core.Mu.Unlock()
	if s.ep == nil {
		return 0, s.opErrorLocked("get inner MTU", nil, net.ErrClosed)
	}
	fam, mtu := sock.FamilyOf(s.core.Assoc.Local.Addr()), 1500
	n := s.host.net
	n.mu.Lock()
	mtu = s.host.link.mtu()
	if s.core.Assoc.Remote.IsValid() {
		fam = sock.FamilyOf(s.core.Assoc.Remote.Addr())
		if peer := n.byAddr[s.core.Assoc.Remote.Addr()]; peer != nil {
			mtu = pathMTULocked(s.host, peer)
		}
	}
	n.mu.Unlock()
	if fam == sock.IPv6 {
		return mtu - 48, nil
	}
	return mtu - 28, nil
}

// Association implements sock.Associator.
func (s *Socket) Association() sock.Association { return s.core.Association() }

// BytesSent implements sock.ByteCounter.
func (s *Socket) BytesSent() uint64 { return s.sent.Load() }

// BytesReceived implements sock.ByteCounter.
func (s *Socket) BytesReceived() uint64 { return s.received.Load() }

// HasBufferedData implements sock.BufferedDataReporter; a simulated socket
// has no layer that holds data, so it is always false.
func (s *Socket) HasBufferedData() bool { return false }

func (s *Socket) opError(op string, addr net.Addr, err error) error {
	s.core.Mu.Lock()
	defer s.core.Mu.Unlock()
	return s.opErrorLocked(op, addr, err)
}

func (s *Socket) opErrorLocked(op string, addr net.Addr, err error) error {
	return sockkit.OpError(op, s.core.Network, s.core.Assoc.Local, s.core.Assoc.Remote, addr, err)
}
