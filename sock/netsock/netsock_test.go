package netsock_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/tether-iot/tether/internal/testrig/sockrig"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/netsock"
	"github.com/tether-iot/tether/sock/sockkit"
)

func newSocket(t testing.TB, network string, cfg *sock.Config) *netsock.Socket {
	t.Helper()
	s, err := netsock.New(network, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

type getters struct{ host, hostname, port, localHost, localPort string }

func readGetters(t *testing.T, s sock.Socket) getters {
	t.Helper()
	var g getters
	var err error
	a := sock.AssociationOf(s)
	for _, f := range []struct {
		dst *string
		get func() (string, error)
	}{
		{&g.host, a.RemoteHost}, {&g.hostname, a.RemoteHostname}, {&g.port, a.RemotePort},
		{&g.localHost, a.LocalHost}, {&g.localPort, a.LocalPort},
	} {
		if *f.dst, err = f.get(); err != nil {
			t.Fatalf("getter: %v", err)
		}
	}
	return g
}

// TestTutorialScenario walks through the Anjay tutorial end to end: connect
// by hostname, shut down, the getters keep answering, I/O fails fast,
// connect again.
func TestTutorialScenario(t *testing.T) {
	for _, network := range []string{"udp4", "tcp4"} {
		t.Run(network, func(t *testing.T) {
			peer := echoPeer(t, network)
			port := strconv.Itoa(int(peer.Port()))
			s := newSocket(t, network, nil) // Go's resolver: localhost from /etc/hosts
			if err := s.Connect(ctx(t), "localhost", port); err != nil {
				t.Fatal(err)
			}
			if st := s.State(); st != sock.StateConnected {
				t.Fatalf("State() = %v after Connect", st)
			}
			sockrig.EchoOnce(t, s, "before")
			before := readGetters(t, s)
			if before.hostname != "localhost" || before.host != "127.0.0.1" || before.port != port {
				t.Fatalf("getters = %+v; want hostname localhost, host 127.0.0.1, port %s", before, port)
			}

			if err := s.Shutdown(); err != nil {
				t.Fatal(err)
			}
			if st := s.State(); st != sock.StateShutdown {
				t.Fatalf("State() = %v after Shutdown", st)
			}
			if after := readGetters(t, s); after != before {
				t.Fatalf("getters changed by Shutdown:\nbefore %+v\nafter  %+v", before, after)
			}
			start := time.Now()
			if err := s.Send([]byte("x")); !errors.Is(err, sock.ErrShutdown) {
				t.Fatalf("Send after Shutdown: %v", err)
			}
			if _, err := s.Receive(make([]byte, 8)); !errors.Is(err, sock.ErrShutdown) {
				t.Fatalf("Receive after Shutdown: %v", err)
			}
			t.Logf("Send and Receive failed %v after Shutdown", time.Since(start))

			if err := s.Connect(ctx(t), "localhost", port); err != nil {
				t.Fatalf("Connect after Shutdown: %v", err)
			}
			if st := s.State(); st != sock.StateConnected {
				t.Fatalf("State() = %v after reconnect", st)
			}
			sockrig.EchoOnce(t, s, "after")
			if g := readGetters(t, s); g.hostname != "localhost" || g.host != before.host || g.port != port {
				t.Fatalf("getters after reconnect = %+v", g)
			}
		})
	}
}

// stickyPeers starts echo peers on 127.0.0.1 and 127.0.0.2 at one port, the
// two nodes "A" and "B" behind one name.
func stickyPeers(t *testing.T, network string) (a, b netip.AddrPort) {
	t.Helper()
	for range 20 {
		pa := echoPeer(t, network+"4")
		b = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), pa.Port())
		if startPeerAt(t, network, b) == nil {
			return pa, b
		}
	}
	t.Fatal("no port free on both 127.0.0.1 and 127.0.0.2")
	return
}

func startPeerAt(t *testing.T, network string, at netip.AddrPort) error {
	if network == "udp" {
		pc, err := net.ListenPacket("udp4", at.String())
		if err != nil {
			return err
		}
		sockrig.EchoPackets(t, pc)
		return nil
	}
	ln, err := net.Listen("tcp4", at.String())
	if err != nil {
		return err
	}
	sockrig.EchoStreams(t, ln)
	return nil
}

// TestStickiness: DNS answers A, B, then B, A; the second connect still
// picks A. When A is gone from DNS, connect picks B and stores B.
func TestStickiness(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			a, b := stickyPeers(t, network)
			port := strconv.Itoa(int(a.Port()))
			var dns sockkit.StaticResolver
			var pe sock.PreferredEndpoint
			s := newSocket(t, network, &sock.Config{Resolver: &dns, Preferred: &pe})

			connect := func(want netip.AddrPort) {
				t.Helper()
				if err := s.Shutdown(); err != nil && s.State() != sock.StateClosed {
					t.Fatal(err)
				}
				if err := s.Connect(ctx(t), "cluster.test", port); err != nil {
					t.Fatal(err)
				}
				if host, _ := s.Association().RemoteHost(); host != want.Addr().String() {
					t.Fatalf("connected to %s, want %v", host, want.Addr())
				}
				if got, _ := pe.Load(); got != want {
					t.Fatalf("preferred endpoint = %v, want %v", got, want)
				}
				sockrig.EchoOnce(t, s, "sticky")
			}
			dns.Set("cluster.test", a.Addr(), b.Addr())
			connect(a)
			dns.Set("cluster.test", b.Addr(), a.Addr())
			connect(a) // sticky, whatever the order
			dns.Set("cluster.test", b.Addr())
			connect(b) // A is gone: B, written back
			dns.Set("cluster.test", a.Addr(), b.Addr())
			connect(b) // and now B is the sticky one
		})
	}
}

func TestTCPRefusedTriesNextAddress(t *testing.T) {
	peer := echoPeer(t, "tcp4")
	var dns sockkit.StaticResolver
	dns.Set("two.test", netip.MustParseAddr("127.0.0.3"), peer.Addr()) // nothing on .3
	s := newSocket(t, "tcp", &sock.Config{Resolver: &dns})
	if err := s.Connect(ctx(t), "two.test", strconv.Itoa(int(peer.Port()))); err != nil {
		t.Fatal(err)
	}
	if host, _ := s.Association().RemoteHost(); host != peer.Addr().String() {
		t.Fatalf("connected to %s, want %v", host, peer.Addr())
	}
	sockrig.EchoOnce(t, s, "second address")

	dns.Set("one.test", netip.MustParseAddr("127.0.0.3"))
	err := s.Connect(ctx(t), "one.test", strconv.Itoa(int(peer.Port())))
	if !errors.Is(err, sock.ErrConnRefused) {
		t.Fatalf("Connect to a refusing address: %v, want ErrConnRefused", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "connect" || oe.Addr.String() != net.JoinHostPort("one.test", strconv.Itoa(int(peer.Port()))) {
		t.Fatalf("error %v does not name the operation and the host as given", err)
	}
}

func TestUDPRefused(t *testing.T) {
	// Find a port nobody listens on: bind one, note it, close it.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)
	pc.Close()
	s := newSocket(t, "udp4", nil)
	if err := s.Connect(ctx(t), "127.0.0.1", port); err != nil {
		t.Fatal(err)
	}
	s.SetReceiveTimeout(2 * time.Second)
	if err := s.Send([]byte("anyone?")); err != nil {
		t.Fatal(err)
	}
	_, err = s.Receive(make([]byte, 8))
	if !errors.Is(err, sock.ErrConnRefused) {
		t.Fatalf("Receive after sending to a closed port: %v, want ErrConnRefused", err)
	}
}

// TestBoundFamily: a bound socket connects only to addresses of its family;
// one bound to a wildcard address moves to the other family on the same port.
func TestBoundFamily(t *testing.T) {
	peer4, peer6 := echoPeer(t, "udp4"), echoPeer(t, "udp6")
	var dns sockkit.StaticResolver
	dns.Set("dual.test", netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.1"))

	s := newSocket(t, "udp", &sock.Config{Resolver: &dns})
	if err := s.Bind(ctx(t), "127.0.0.1", "0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(ctx(t), "dual.test", strconv.Itoa(int(peer4.Port()))); err != nil {
		t.Fatal(err)
	}
	if host, _ := s.Association().RemoteHost(); host != "127.0.0.1" {
		t.Fatalf("socket bound to 127.0.0.1 connected to %s", host)
	}
	sockrig.EchoOnce(t, s, "v4")

	if err := s.Bind(ctx(t), "127.0.0.1", "0"); err != nil {
		t.Fatal(err)
	}
	dns.Set("v6only.test", netip.MustParseAddr("::1"))
	err := s.Connect(ctx(t), "v6only.test", strconv.Itoa(int(peer6.Port())))
	if !errors.Is(err, sock.ErrAddrNotAvail) {
		t.Fatalf("socket bound to 127.0.0.1 connecting to an IPv6-only name: %v, want ErrAddrNotAvail", err)
	}
	if st := s.State(); st != sock.StateBound {
		t.Fatalf("State() = %v after a failed connect, want it still bound", st)
	}

	if err := s.Bind(ctx(t), "", "0"); err != nil { // wildcard, IPv4
		t.Fatal(err)
	}
	port, _ := s.Association().LocalPort()
	if err := s.Connect(ctx(t), "v6only.test", strconv.Itoa(int(peer6.Port()))); err != nil {
		t.Fatalf("wildcard-bound socket to an IPv6 peer: %v", err)
	}
	if got, _ := s.Association().LocalPort(); got != port {
		t.Fatalf("moved to IPv6 on port %s, want the bound port %s", got, port)
	}
	sockrig.EchoOnce(t, s, "v6")
}

func TestForcedFamily(t *testing.T) {
	peer6 := echoPeer(t, "udp6")
	var dns sockkit.StaticResolver
	dns.Set("dual.test", netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"))
	s := newSocket(t, "udp6", &sock.Config{Resolver: &dns})
	if err := s.Connect(ctx(t), "dual.test", strconv.Itoa(int(peer6.Port()))); err != nil {
		t.Fatal(err)
	}
	if host, _ := s.Association().RemoteHost(); host != "::1" {
		t.Fatalf("udp6 socket connected to %s", host)
	}
	sockrig.EchoOnce(t, s, "forced")
}

func TestInnerMTUByFamily(t *testing.T) {
	for _, tc := range []struct {
		network string
		hdr     int
	}{{"udp4", 28}, {"udp6", 48}} {
		t.Run(tc.network, func(t *testing.T) {
			s := newSocket(t, tc.network, nil)
			if err := s.Bind(ctx(t), "", "0"); err != nil {
				t.Fatal(err)
			}
			fallback := map[string]int{"udp4": 548, "udp6": 1232}[tc.network]
			if mtu, err := s.InnerMTU(); err != nil || mtu != fallback {
				t.Errorf("unconnected InnerMTU() = %d, %v; want the family's safe size %d", mtu, err, fallback)
			}
			peer := echoPeer(t, tc.network)
			if err := s.Connect(ctx(t), peer.Addr().String(), strconv.Itoa(int(peer.Port()))); err != nil {
				t.Fatal(err)
			}
			mtu, err := s.InnerMTU()
			if err != nil {
				t.Fatal(err)
			}
			lo, _ := net.InterfaceByName("lo")
			if lo != nil && mtu != lo.MTU-tc.hdr && mtu != 65535-tc.hdr {
				t.Errorf("connected InnerMTU() = %d; loopback MTU is %d, headers %d", mtu, lo.MTU, tc.hdr)
			}
			t.Logf("InnerMTU() = %d", mtu)
		})
	}
	s := newSocket(t, "tcp", nil)
	if _, err := s.InnerMTU(); !errors.Is(err, sock.ErrNotSupported) {
		t.Errorf("TCP InnerMTU: %v, want ErrNotSupported", err)
	}
}

func TestNewRejectsUnknownNetwork(t *testing.T) {
	if _, err := netsock.New("sctp", nil); err == nil {
		t.Fatal("netsock.New(\"sctp\") succeeded")
	}
}

func TestZeroAllocsPerSendReceive(t *testing.T) {
	peer := echoPeer(t, "udp4")
	s := newSocket(t, "udp4", nil)
	if err := s.Connect(ctx(t), peer.Addr().String(), strconv.Itoa(int(peer.Port()))); err != nil {
		t.Fatal(err)
	}
	msg, buf := make([]byte, 1024), make([]byte, 2048)
	allocs := testing.AllocsPerRun(200, func() {
		if err := s.Send(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Receive(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Send+Receive, want 0", allocs)
	}
}

// TestCountersNeverDecrease: a receive that fails (here, interrupted by
// Shutdown) must neither return a negative count nor lower the counter;
// recvmsg reports n == -1 with its errors.
func TestCountersNeverDecrease(t *testing.T) {
	peer := echoPeer(t, "udp4")
	s := newSocket(t, "udp4", nil)
	if err := s.Connect(ctx(t), peer.Addr().String(), strconv.Itoa(int(peer.Port()))); err != nil {
		t.Fatal(err)
	}
	sockrig.EchoOnce(t, s, "counted")
	before := s.BytesReceived()
	done := make(chan int, 1)
	s.SetReceiveTimeout(-1)
	go func() { n, _ := s.Receive(make([]byte, 16)); done <- n }()
	time.Sleep(20 * time.Millisecond)
	s.Shutdown()
	if n := <-done; n < 0 {
		t.Fatalf("an interrupted Receive returned %d bytes", n)
	}
	if after := s.BytesReceived(); after < before {
		t.Fatalf("BytesReceived went from %d to %d", before, after)
	}
}

// TestBindFailureReturns: a Bind the OS refuses (a TCP port another socket
// listens on) returns its error; it used to deadlock, wrapping the error
// under the lock it held.
func TestBindFailureReturns(t *testing.T) {
	a := newSocket(t, "tcp4", nil)
	if err := sock.Bind(ctx(t), a, "127.0.0.1", "0"); err != nil {
		t.Fatal(err)
	}
	port, _ := a.Association().LocalPort()
	b := newSocket(t, "tcp4", nil)
	done := make(chan error, 1)
	go func() { done <- sock.Bind(ctx(t), b, "127.0.0.1", port) }()
	select {
	case err := <-done:
		var oe *net.OpError
		if err == nil || !errors.As(err, &oe) || oe.Op != "bind" {
			t.Fatalf("Bind to a port in use: %v, want a bind *net.OpError", err)
		}
		if b.State() != sock.StateClosed {
			t.Fatalf("State() after a failed Bind = %v, want closed", b.State())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Bind to a port in use never returned")
	}
}

// TestEphemeralPortsDistinct: UDP sockets connected to one peer from
// ephemeral ports each have their own port. With SO_REUSEADDR on every
// socket, Linux handed the same port to two of them (about 5 in 1,000),
// and each received the other's datagrams.
func TestEphemeralPortsDistinct(t *testing.T) {
	for _, bind := range []bool{false, true} {
		t.Run("bind="+strconv.FormatBool(bind), func(t *testing.T) {
			peer := echoPeer(t, "udp4")
			seen := make(map[uint16]bool)
			for range 1000 {
				s := newSocket(t, "udp4", nil)
				if bind {
					if err := s.Bind(ctx(t), "127.0.0.1", "0"); err != nil {
						t.Fatal(err)
					}
				} else if err := s.Connect(ctx(t), peer.Addr().String(), strconv.Itoa(int(peer.Port()))); err != nil {
					t.Fatal(err)
				}
				p := s.Association().Local.Port()
				if seen[p] {
					t.Fatalf("two sockets on local port %d", p)
				}
				seen[p] = true
			}
		})
	}
}
