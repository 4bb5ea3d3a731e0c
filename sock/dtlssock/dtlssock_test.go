package dtlssock_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/dtls/v3"

	"github.com/tether-iot/tether/internal/testpki"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/internal/testrig/sockrig"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/dtlssock"
	"github.com/tether-iot/tether/sock/netsock"
	"github.com/tether-iot/tether/sock/simnet"
	"github.com/tether-iot/tether/sock/socktest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var psk = []byte("tether test key!")

func pskConfig() *dtlssock.Config {
	return &dtlssock.Config{
		PSK:          func([]byte) ([]byte, error) { return psk, nil },
		PSKIdentity:  []byte("tether"),
		CipherSuites: []dtlssock.CipherSuite{dtlssock.TLS_PSK_WITH_AES_128_CCM_8},
	}
}

// listenEcho serves a DTLS echo peer (PSK, Connection IDs on offer) with
// Listen on pc and returns a counter of the handshakes it completed.
func listenEcho(t testing.TB, pc net.PacketConn) func() int {
	cfg := pskConfig()
	cfg.ConnectionIDs = true
	ln, err := dtlssock.Listen(pc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	handshakes := testrig.CountAccepts(ln) // one a completed handshake
	sockrig.EchoStreams(t, handshakes)
	return handshakes.Accepted
}

// dtlsEcho is listenEcho on loopback UDP; it returns the port too. It uses
// Listen rather than pion's listener: pion's drops application records
// that overtake the end of its server handshake, which the suite's
// Concurrent burst does under load.
func dtlsEcho(t testing.TB) (string, func() int) {
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port), listenEcho(t, pc)
}

// pionEcho serves a DTLS echo peer with pion's own listener on ip (a
// loopback address) and returns its port.
func pionEcho(t testing.TB, ip net.IP, opts ...dtls.ServerOption) string {
	ln, err := dtls.ListenWithOptions("udp", &net.UDPAddr{IP: ip}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	sockrig.EchoStreams(t, ln)
	return strconv.Itoa(ln.Addr().(*net.UDPAddr).Port)
}

// bytesOf returns the byte counters of s (its raw socket's).
func bytesOf(s sock.Socket) sock.ByteCounter {
	c, _ := sock.As[sock.ByteCounter](s)
	return c
}

func newSocket(t testing.TB) *dtlssock.Socket {
	raw, err := netsock.New("udp4", nil)
	if err != nil {
		t.Fatal(err)
	}
	return dtlssock.New(raw, pskConfig())
}

func TestConformance(t *testing.T) {
	socktest.Run(t, func(t *testing.T) socktest.Env {
		port, _ := dtlsEcho(t)
		return socktest.Env{
			NewSocket:      func(t *testing.T) sock.Socket { return newSocket(t) },
			Datagram:       true,
			Host:           "127.0.0.1",
			Port:           port,
			CountsOverhead: true,
		}
	})
}

// echoRetrying sends msg until its echo comes back, as a CoAP client
// retransmits: a datagram may be lost, for instance while the server moves
// a Connection ID session to the client's new address (RFC 9146).
func echoRetrying(t *testing.T, s sock.Socket, msg string) (sends int) {
	t.Helper()
	s.SetReceiveTimeout(time.Second)
	defer s.SetReceiveTimeout(sock.DefaultReceiveTimeout)
	buf := make([]byte, 256)
	for sends = 1; sends <= 10; sends++ {
		if err := s.Send([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		for {
			n, err := s.Receive(buf)
			if sock.IsTimeout(err) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(buf[:n]) == msg {
				return sends
			}
		}
	}
	t.Fatalf("no echo of %q after 10 sends", msg)
	return 0
}

// TestResumeWithoutHandshake: after Shutdown, Connect restores the session
// on a new local port with no handshake (the server routes it by its
// Connection ID), 20 times, and the server counts one handshake in all.
func TestResumeWithoutHandshake(t *testing.T) {
	port, handshakes := dtlsEcho(t)
	s := newSocket(t)
	defer s.Close()
	ctx := context.Background()
	if err := s.Connect(ctx, "127.0.0.1", port); err != nil {
		t.Fatal(err)
	}
	sockrig.EchoOnce(t, s, "first")
	ports := map[string]bool{}
	resent := 0
	for i := range 20 {
		p, _ := sock.AssociationOf(s).LocalPort()
		ports[p] = true
		if err := s.Shutdown(); err != nil {
			t.Fatal(err)
		}
		sent := bytesOf(s).BytesSent()
		if err := s.Connect(ctx, "127.0.0.1", port); err != nil {
			t.Fatal(err)
		}
		if after := bytesOf(s).BytesSent(); after != sent {
			t.Fatalf("reconnect %d sent %d bytes before any data: a handshake", i+1, after-sent)
		}
		if !s.SessionResumed() {
			t.Fatalf("reconnect %d did not resume", i+1)
		}
		resent += echoRetrying(t, s, "again"+strconv.Itoa(i)) - 1
	}
	if len(ports) < 2 {
		t.Fatalf("every reconnect came from the same port; the test proves nothing")
	}
	if n, full := handshakes(), s.FullHandshakes(); n != 1 || full != 1 {
		t.Fatalf("server saw %d handshakes, client ran %d; want 1 over 21 connects", n, full)
	}
	if resent != 0 {
		t.Fatalf("%d of 20 first echoes after a reconnect from a new port were lost; want none (see Send)", resent)
	}
	t.Logf("21 connects, 1 handshake, %d ports, no echo lost", len(ports))
}

// TestWire watches the raw socket: Shutdown sends nothing, the reconnect
// after it sends no handshake record (no ClientHello), and Close sends one
// alert record (close_notify).
func TestWire(t *testing.T) {
	port, _ := dtlsEcho(t)
	base, _ := netsock.New("udp4", nil)
	rec := &sockrig.Recorder{Socket: base}
	s := dtlssock.New(rec, pskConfig())
	ctx := context.Background()
	if err := s.Connect(ctx, "127.0.0.1", port); err != nil {
		t.Fatal(err)
	}
	sockrig.EchoOnce(t, s, "hello")
	rec.Take()
	if err := s.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if b := rec.Take(); len(b) != 0 {
		t.Fatalf("Shutdown sent %d datagrams; want none", len(b))
	}
	if err := s.Connect(ctx, "127.0.0.1", port); err != nil {
		t.Fatal(err)
	}
	sockrig.EchoOnce(t, s, "hello")
	const handshake = 22
	for i, d := range rec.Take() {
		if len(d) > 0 && d[0] == handshake {
			t.Fatalf("datagram %d after the reconnect is a handshake record (a ClientHello); want the session resumed", i)
		}
	}
	if !s.SessionResumed() {
		t.Fatal("the reconnect did not resume the session")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b := rec.Take()
	const alert, alertCID = 21, 25 // RFC 9146: a record with a CID is tls12_cid
	if len(b) != 1 || (b[0][0] != alert && b[0][0] != alertCID) {
		t.Fatalf("Close sent %d datagrams (first type %v); want one alert record", len(b), firstType(b))
	}
	// The record is encrypted; its size says what it holds. A tls12_cid
	// record here is a 13-byte header, the server's 8-byte CID, an 8-byte
	// explicit nonce, a 2-byte alert and its 1-byte inner content type, and
	// an 8-byte CCM_8 tag: an alert and nothing else.
	if b[0][0] == alertCID && len(b[0]) != 13+8+8+2+1+8 {
		t.Fatalf("Close sent a %d-byte tls12_cid record: not a lone alert", len(b[0]))
	}
	t.Logf("Close sent one %d-byte record of type %d; Shutdown sent nothing", len(b[0]), b[0][0])
}

func firstType(b [][]byte) any {
	if len(b) == 0 || len(b[0]) == 0 {
		return nil
	}
	return b[0][0]
}

// TestHandshakeBytes measures what a reconnect costs on the wire: a full
// handshake (PSK; an ECDSA certificate) against a restored session, which
// costs nothing before data.
func TestHandshakeBytes(t *testing.T) {
	pskPort, _ := dtlsEcho(t)
	certPort := certEcho(t, net.IPv4(127, 0, 0, 1))
	ctx := context.Background()
	wire := func(s sock.Socket) uint64 { return bytesOf(s).BytesSent() + bytesOf(s).BytesReceived() }
	for _, tc := range []struct {
		name string
		port string
		cfg  *dtlssock.Config
	}{
		{"PSK", pskPort, pskConfig()},
		{"certificate", certPort, &dtlssock.Config{RootCAs: testpki.Get().Pool}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := netsock.New("udp4", nil)
			if err != nil {
				t.Fatal(err)
			}
			s := dtlssock.New(raw, tc.cfg)
			defer s.Close()
			if err := s.Connect(ctx, "127.0.0.1", tc.port); err != nil {
				t.Fatal(err)
			}
			full := wire(s)
			sockrig.EchoOnce(t, s, "x")
			if err := s.Shutdown(); err != nil {
				t.Fatal(err)
			}
			before := wire(s)
			if err := s.Connect(ctx, "127.0.0.1", tc.port); err != nil {
				t.Fatal(err)
			}
			resumed := wire(s) - before
			if full == 0 || resumed != 0 || !s.SessionResumed() {
				t.Fatalf("full handshake %d bytes, resumed reconnect %d bytes; want >0 and 0", full, resumed)
			}
			t.Logf("reconnect over DTLS (%s): full handshake %d bytes on the wire, restored session %d", tc.name, full, resumed)
		})
	}
}

// certEcho serves a DTLS echo peer with the test PKI's server certificate
// on ip (a loopback address) and returns its port.
func certEcho(t *testing.T, ip net.IP) string {
	return pionEcho(t, ip,
		dtls.WithCertificates(testpki.Get().Server),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		dtls.WithConnectionIDGenerator(dtls.RandomCIDGenerator(8)))
}

// TestCertificates: a server certificate from a CA the test makes is
// verified against the CA and the host (a name or an IP address); every
// failure is an x509 error from Connect, and the socket stays closed:
// nothing is ever sent in the clear.
func TestCertificates(t *testing.T) {
	pki := testpki.Get()
	on1 := certEcho(t, net.IPv4(127, 0, 0, 1))
	on2 := certEcho(t, net.IPv4(127, 0, 0, 2)) // an address the certificate does not name
	tests := []struct {
		name       string
		host, port string
		cfg        dtlssock.Config
		want       any // nil, or a pointer to the x509 error type expected
	}{
		{"IP in the certificate", "127.0.0.1", on1, dtlssock.Config{RootCAs: pki.Pool}, nil},
		{"name in the certificate", "localhost", on1, dtlssock.Config{RootCAs: pki.Pool}, nil},
		{"ServerName set", "127.0.0.1", on1, dtlssock.Config{RootCAs: pki.Pool, ServerName: "server.sim"}, nil},
		{"unknown CA", "127.0.0.1", on1, dtlssock.Config{RootCAs: x509.NewCertPool()}, new(x509.UnknownAuthorityError)},
		{"IP not in the certificate", "127.0.0.2", on2, dtlssock.Config{RootCAs: pki.Pool}, new(x509.HostnameError)},
		{"ServerName not in the certificate", "127.0.0.1", on1, dtlssock.Config{RootCAs: pki.Pool, ServerName: "other.sim"}, new(x509.HostnameError)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := netsock.New("udp", nil)
			if err != nil {
				t.Fatal(err)
			}
			s := dtlssock.New(raw, &tc.cfg)
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang guard
			defer cancel()
			err = s.Connect(ctx, tc.host, tc.port)
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				sockrig.EchoOnce(t, s, "verified")
				return
			}
			if !errors.As(err, tc.want) || !errors.Is(err, sock.ErrAuth) {
				t.Fatalf("Connect = %v, want %T marked sock.ErrAuth", err, tc.want)
			}
			if st := s.State(); st != sock.StateClosed {
				t.Fatalf("State() = %v after a failed verification, want closed", st)
			}
			if err := s.Send([]byte("plaintext?")); err == nil {
				t.Fatal("Send after a failed verification succeeded")
			}
		})
	}
}

// simnetEcho is listenEcho on a simulated host's packet conn.
func simnetEcho(t *testing.T, h *simnet.Host, addr string) func() int {
	pc, err := h.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return listenEcho(t, pc)
}

func TestConformanceOverSimnet(t *testing.T) {
	for _, tc := range []struct{ name, host, listen string }{
		{"ipv4", "10.0.0.1", ":5684"},
		{"ipv6", "fd00::1", "[fd00::1]:5684"},
		{"name", "server.sim", ":5684"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			socktest.Run(t, func(t *testing.T) socktest.Env {
				n := simnet.New(1)
				srv := n.AddHost("server", "10.0.0.1", "fd00::1")
				dev := n.AddHost("device", "10.0.0.2", "fd00::2")
				n.DNS().Set("server.sim", netip.MustParseAddr("10.0.0.1"))
				simnetEcho(t, srv, tc.listen)
				return socktest.Env{
					NewSocket: func(t *testing.T) sock.Socket {
						raw, err := dev.NewSocket("udp", nil)
						if err != nil {
							t.Fatal(err)
						}
						return dtlssock.New(raw, pskConfig())
					},
					Datagram: true, Host: tc.host, Port: "5684", Unresolvable: "nowhere.sim", CountsOverhead: true,
				}
			})
		})
	}
}

// TestListenFollowsConnectionID: with Listen on a simulated network, a
// client whose address changes while it is shut down (the device got a new
// IP) resumes its session with no handshake: the listener routes it by its
// Connection ID.
func TestListenFollowsConnectionID(t *testing.T) {
	n := simnet.New(2)
	srv := n.AddHost("server", "10.0.0.1")
	dev := n.AddHost("device", "10.0.0.2")
	handshakes := simnetEcho(t, srv, ":5684")
	raw, err := dev.NewSocket("udp", nil)
	if err != nil {
		t.Fatal(err)
	}
	s := dtlssock.New(raw, pskConfig())
	defer s.Close()
	ctx := context.Background()
	if err := s.Connect(ctx, "10.0.0.1", "5684"); err != nil {
		t.Fatal(err)
	}
	sockrig.EchoOnce(t, s, "first")
	addrs := map[string]bool{}
	for i := range 10 {
		if err := s.Shutdown(); err != nil {
			t.Fatal(err)
		}
		dev.SetAddrs("10.0.1." + strconv.Itoa(10+i))
		if err := s.Connect(ctx, "10.0.0.1", "5684"); err != nil {
			t.Fatal(err)
		}
		h, _ := sock.AssociationOf(s).LocalHost()
		addrs[h] = true
		if !s.SessionResumed() {
			t.Fatalf("reconnect %d did not resume", i+1)
		}
		if sends := echoRetrying(t, s, "moved"+strconv.Itoa(i)); sends != 1 {
			t.Fatalf("reconnect %d from a new address: the first echo was lost", i+1)
		}
	}
	if len(addrs) != 10 {
		t.Fatalf("the device used %d addresses, want 10", len(addrs))
	}
	if got := handshakes(); got != 1 {
		t.Fatalf("server saw %d handshakes over 10 address changes, want 1", got)
	}
}

// TestListenClose: Close ends Accept and every connection's reads, and
// leaves no goroutine behind (TestMain checks).
func TestListenClose(t *testing.T) {
	n := simnet.New(3)
	pc, err := n.AddHost("server", "10.0.0.1").ListenPacket("udp", ":5684")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := dtlssock.Listen(pc, pskConfig())
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan error, 1)
	go func() { _, err := ln.Accept(); accepted <- err }()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if _, err := dtlssock.Listen(pc, nil); err == nil {
		t.Fatal("Listen with no config succeeded")
	}
}

// noCIDEcho is a DTLS echo server without Connection IDs that resumes
// sessions by ID, as libcoap's OpenSSL build does; it returns its port.
func noCIDEcho(t *testing.T) string {
	opts := append(dtlssock.ServerOptions(pskConfig()), dtls.WithSessionStore(dtlssock.NewSessionStore()))
	return pionEcho(t, net.IPv4(127, 0, 0, 1), opts...)
}

// TestResumeWithoutCID: against a server without Connection IDs, a
// reconnect from a new port cannot restore the state (the server would not
// know the client), so it resumes the session by ID in an abbreviated
// handshake, smaller than a full one, and the first echo comes back at
// once. From the same address and port the state is restored.
func TestResumeWithoutCID(t *testing.T) {
	port := noCIDEcho(t)
	ctx := context.Background()
	wire := func(s sock.Socket) uint64 { return bytesOf(s).BytesSent() + bytesOf(s).BytesReceived() }

	t.Run("new port", func(t *testing.T) {
		s := newSocket(t)
		defer s.Close()
		if err := s.Connect(ctx, "127.0.0.1", port); err != nil {
			t.Fatal(err)
		}
		full := wire(s)
		sockrig.EchoOnce(t, s, "first")
		for i := range 3 {
			before, _ := sock.AssociationOf(s).LocalPort()
			if err := s.Shutdown(); err != nil {
				t.Fatal(err)
			}
			at := wire(s)
			if err := s.Connect(ctx, "127.0.0.1", port); err != nil {
				t.Fatal(err)
			}
			cost := wire(s) - at
			if after, _ := sock.AssociationOf(s).LocalPort(); after == before {
				t.Skip("the reconnect kept its port; nothing to show")
			}
			if !s.SessionResumed() || s.StateRestored() || cost == 0 || cost >= full {
				t.Fatalf("reconnect %d: resumed %v, restored %v, %d bytes against %d for a full handshake; want an abbreviated handshake",
					i+1, s.SessionResumed(), s.StateRestored(), cost, full)
			}
			s.SetReceiveTimeout(time.Second)
			sockrig.EchoOnce(t, s, "again")
			if i == 0 {
				t.Logf("without a CID: full handshake %d bytes, resumed by session ID %d", full, cost)
			}
		}
		if n := s.FullHandshakes(); n != 1 {
			t.Fatalf("%d full handshakes over 4 connects, want 1", n)
		}
	})
	t.Run("address unknown", func(t *testing.T) {
		// A raw socket that cannot tell its local address (a modem's, say)
		// might be anywhere after a reconnect: no restore without a CID.
		raw, err := netsock.New("udp4", nil)
		if err != nil {
			t.Fatal(err)
		}
		s := dtlssock.New(opaque{raw}, pskConfig())
		defer s.Close()
		if err := s.Connect(ctx, "127.0.0.1", port); err != nil {
			t.Fatal(err)
		}
		sockrig.EchoOnce(t, s, "first")
		if err := s.Shutdown(); err != nil {
			t.Fatal(err)
		}
		if err := s.Connect(ctx, "127.0.0.1", port); err != nil {
			t.Fatal(err)
		}
		if s.StateRestored() || !s.SessionResumed() {
			t.Fatalf("restored %v, resumed %v; want an abbreviated handshake", s.StateRestored(), s.SessionResumed())
		}
		s.SetReceiveTimeout(time.Second)
		sockrig.EchoOnce(t, s, "again")
	})
	t.Run("same port", func(t *testing.T) {
		raw, err := netsock.New("udp4", nil)
		if err != nil {
			t.Fatal(err)
		}
		s := dtlssock.New(raw, pskConfig())
		defer s.Close()
		if err := s.Connect(ctx, "127.0.0.1", port); err != nil {
			t.Fatal(err)
		}
		sockrig.EchoOnce(t, s, "first")
		local, _ := sock.AssociationOf(s).LocalPort()
		if err := s.Shutdown(); err != nil {
			t.Fatal(err)
		}
		// As an LwM2M client does for its server connections: the raw
		// socket rebinds its previous port before it reconnects.
		if err := sock.Bind(ctx, raw, "127.0.0.1", local); err != nil {
			t.Fatal(err)
		}
		if err := s.Connect(ctx, "127.0.0.1", port); err != nil {
			t.Fatal(err)
		}
		if again, _ := sock.AssociationOf(s).LocalPort(); again != local {
			t.Fatalf("the raw socket came back on port %s, not %s", again, local)
		}
		if !s.StateRestored() {
			t.Fatal("a reconnect from the same address and port did not restore the state")
		}
		s.SetReceiveTimeout(time.Second)
		sockrig.EchoOnce(t, s, "again")
	})
}

// TestListenNewHandshakeSameAddress: a client that vanished without a
// word (a device that rebooted) comes back from the same address and port
// with a new handshake; the server starts a new session for it (RFC 6347
// section 4.2.8) instead of feeding the hello to the old one.
func TestListenNewHandshakeSameAddress(t *testing.T) {
	port, handshakes := dtlsEcho(t)
	ctx := context.Background()
	local := ""
	for i := range 2 {
		raw, err := netsock.New("udp4", nil)
		if err != nil {
			t.Fatal(err)
		}
		if local != "" {
			if err := sock.Bind(ctx, raw, "127.0.0.1", local); err != nil {
				t.Fatal(err)
			}
		}
		s := dtlssock.New(raw, pskConfig())
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = s.Connect(cctx, "127.0.0.1", port)
		cancel()
		if err != nil {
			t.Fatalf("connect %d: %v", i+1, err)
		}
		if p, _ := sock.AssociationOf(s).LocalPort(); local != "" && p != local {
			t.Fatalf("the second client came from port %s, not %s", p, local)
		} else {
			local = p
		}
		sockrig.EchoOnce(t, s, "hello")
		s.Shutdown() // gone without a close_notify
		s.Close()
	}
	if n := handshakes(); n != 2 {
		t.Fatalf("server completed %d handshakes, want 2", n)
	}
}

// opaque is a raw socket with the required methods and Shutdown only: it
// cannot tell its addresses.
type opaque struct{ sock.Socket }

func (o opaque) Shutdown() error { return sock.Shutdown(o.Socket) }

// TestPSKSuitesByDefault: a Config with a pre-shared key and no cipher
// suites offers the PSK suites (pion's own defaults have none), on both
// sides.
func TestPSKSuitesByDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := simnet.New(1)
		pc, err := n.AddHost("server", "10.0.0.1").ListenPacket("udp", ":5684")
		if err != nil {
			t.Fatal(err)
		}
		cfg := pskConfig()
		cfg.CipherSuites = nil
		ln, err := dtlssock.Listen(pc, cfg)
		if err != nil {
			t.Fatal(err)
		}
		sockrig.EchoStreams(t, ln)
		raw, err := n.AddHost("device", "10.0.0.2").NewSocket("udp", nil)
		if err != nil {
			t.Fatal(err)
		}
		s := dtlssock.New(raw, cfg)
		defer s.Close()
		if err := s.Connect(t.Context(), "10.0.0.1", "5684"); err != nil {
			t.Fatal(err)
		}
		sockrig.EchoOnce(t, s, "no suites named")
	})
}

// TestPinnedCertificate: with PinnedCertificate the server's certificate
// is compared byte for byte, with no CA and no name (LwM2M's Certificate
// Usage 3): the pinned one is taken at an address it does not name; any
// other is refused as an authentication failure.
func TestPinnedCertificate(t *testing.T) {
	pki := testpki.Get()
	on2 := certEcho(t, net.IPv4(127, 0, 0, 2)) // an address the certificate does not name
	block, _ := pem.Decode(pki.CertPEM)
	stranger, _ := pem.Decode(pki.StrangerPEM)
	for _, tc := range []struct {
		name   string
		pinned []byte
		ok     bool
	}{{"the server's certificate", block.Bytes, true}, {"another certificate", stranger.Bytes, false}} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := netsock.New("udp", nil)
			if err != nil {
				t.Fatal(err)
			}
			s := dtlssock.New(raw, &dtlssock.Config{PinnedCertificate: tc.pinned})
			defer s.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err = s.Connect(ctx, "127.0.0.2", on2)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				sockrig.EchoOnce(t, s, "pinned")
				return
			}
			if !errors.Is(err, sock.ErrAuth) {
				t.Fatalf("Connect = %v, want sock.ErrAuth", err)
			}
		})
	}
}
