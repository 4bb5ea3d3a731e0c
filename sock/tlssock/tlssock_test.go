package tlssock_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tether-iot/tether/internal/testpki"
	"github.com/tether-iot/tether/internal/testrig/sockrig"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/netsock"
	"github.com/tether-iot/tether/sock/simnet"
	"github.com/tether-iot/tether/sock/sockkit"
	"github.com/tether-iot/tether/sock/socktest"
	"github.com/tether-iot/tether/sock/tlssock"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func getPKI(testing.TB) testpki.PKI { return testpki.Get() }

func serverConfig(t testing.TB) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{getPKI(t).Server}}
}

func TestConformance(t *testing.T) {
	for _, tc := range []struct{ network, host string }{
		{"tcp4", "127.0.0.1"}, {"tcp6", "::1"}, {"tcp4", "localhost"},
	} {
		t.Run(tc.network+"/"+tc.host, func(t *testing.T) {
			socktest.Run(t, func(t *testing.T) socktest.Env {
				addr := "127.0.0.1:0"
				if tc.network == "tcp6" {
					addr = "[::1]:0"
				}
				ln, err := net.Listen(tc.network, addr)
				if err != nil {
					t.Skipf("no %s loopback: %v", tc.network, err)
				}
				sockrig.EchoStreams(t, tls.NewListener(ln, serverConfig(t)))
				var dns sockkit.StaticResolver
				dns.Set("localhost", netip.MustParseAddr("127.0.0.1"))
				return socktest.Env{
					NewSocket: func(t *testing.T) sock.Socket {
						raw, err := netsock.New(tc.network, &sock.Config{Resolver: &dns})
						if err != nil {
							t.Fatal(err)
						}
						return tlssock.New(raw, &tls.Config{RootCAs: getPKI(t).Pool})
					},
					Host:           tc.host,
					Port:           strconv.Itoa(ln.Addr().(*net.TCPAddr).Port),
					Unresolvable:   "nowhere.test",
					CountsOverhead: true,
				}
			})
		})
	}
}

func TestConformanceOverSimnet(t *testing.T) {
	socktest.Run(t, func(t *testing.T) socktest.Env {
		n := simnet.New(1)
		srv := n.AddHost("server", "10.0.0.1")
		dev := n.AddHost("device", "10.0.0.2")
		n.DNS().Set("server.sim", netip.MustParseAddr("10.0.0.1"))
		ln, err := srv.Listen("tcp", ":5684")
		if err != nil {
			t.Fatal(err)
		}
		sockrig.EchoStreams(t, tls.NewListener(ln, serverConfig(t)))
		return socktest.Env{
			NewSocket: func(t *testing.T) sock.Socket {
				raw, _ := dev.NewSocket("tcp", nil)
				return tlssock.New(raw, &tls.Config{RootCAs: getPKI(t).Pool})
			},
			Host: "server.sim", Port: "5684", Unresolvable: "nowhere.sim", CountsOverhead: true,
		}
	})
}

func TestResumeAfterShutdown(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sockrig.EchoStreams(t, tls.NewListener(ln, serverConfig(t)))
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	raw, _ := netsock.New("tcp4", nil)
	s := tlssock.New(raw, &tls.Config{RootCAs: getPKI(t).Pool})
	defer s.Close()
	ctx := context.Background()
	if err := s.Connect(ctx, "127.0.0.1", port); err != nil {
		t.Fatal(err)
	}
	sockrig.EchoOnce(t, s, "first") // reading also takes the server's session ticket
	if s.SessionResumed() {
		t.Fatal("the first connect claims a resumed session")
	}
	for i := range 3 {
		if err := sock.Shutdown(s); err != nil {
			t.Fatal(err)
		}
		if err := s.Connect(ctx, "127.0.0.1", port); err != nil {
			t.Fatal(err)
		}
		if !s.SessionResumed() {
			t.Fatalf("reconnect %d after Shutdown ran a full handshake", i+1)
		}
		sockrig.EchoOnce(t, s, "again")
	}
}

// TestHandshakeFailures: each way a handshake can fail is classified where
// it happens. Refused credentials match sock.ErrAuth, a peer that does not
// speak TLS is permanent, and silence stays a transient timeout; after any
// of them the socket is closed and sends nothing.
func TestHandshakeFailures(t *testing.T) {
	serve := func(t *testing.T, handle func(net.Conn)) string {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				handle(c)
				c.Close()
			}
		}()
		t.Cleanup(func() { ln.Close(); <-done })
		return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	}
	tlsServer := func(cfg *tls.Config) func(net.Conn) {
		return func(c net.Conn) { tls.Server(c, cfg).Handshake() }
	}
	pki := getPKI(t)
	tests := []struct {
		name      string
		client    *tls.Config
		server    func(net.Conn)
		auth      bool // matches sock.ErrAuth
		permanent bool
		also      func(error) bool
	}{
		{"unknown CA", &tls.Config{RootCAs: x509.NewCertPool()}, tlsServer(serverConfig(t)), true, true,
			func(err error) bool { var ue x509.UnknownAuthorityError; return errors.As(err, &ue) }},
		{"wrong name", &tls.Config{RootCAs: pki.Pool, ServerName: "elsewhere.example"}, tlsServer(serverConfig(t)), true, true,
			func(err error) bool { var he x509.HostnameError; return errors.As(err, &he) }},
		{"client certificate required", &tls.Config{RootCAs: pki.Pool, MaxVersion: tls.VersionTLS12},
			tlsServer(&tls.Config{Certificates: []tls.Certificate{pki.Server}, ClientAuth: tls.RequireAnyClientCert}), true, true, nil},
		{"not a TLS server (a captive portal, say)", &tls.Config{RootCAs: pki.Pool}, func(c net.Conn) {
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
		}, false, false, func(err error) bool { return strings.Contains(err.Error(), "does not speak TLS") }},
		{"no common version", &tls.Config{RootCAs: pki.Pool, MaxVersion: tls.VersionTLS12},
			tlsServer(&tls.Config{Certificates: []tls.Certificate{pki.Server}, MinVersion: tls.VersionTLS13}), true, true, nil},
		{"silent server", &tls.Config{RootCAs: pki.Pool}, func(c net.Conn) {
			io.Copy(io.Discard, c) // until the client gives up
		}, false, false, sock.IsTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := serve(t, tt.server)
			raw, _ := netsock.New("tcp4", nil)
			s := tlssock.New(raw, tt.client)
			defer s.Close()
			wait := time.Minute // a hang guard: these fail on their own
			if !tt.permanent {
				wait = 500 * time.Millisecond // the silent server: the deadline is the failure
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			err := s.Connect(ctx, "127.0.0.1", port)
			if err == nil {
				t.Fatal("the handshake succeeded")
			}
			if errors.Is(err, sock.ErrAuth) != tt.auth || sock.IsPermanent(err) != tt.permanent {
				t.Errorf("%v: ErrAuth %v, permanent %v; want %v, %v", err, errors.Is(err, sock.ErrAuth), sock.IsPermanent(err), tt.auth, tt.permanent)
			}
			if tt.also != nil && !tt.also(err) {
				t.Errorf("%v: the cause is lost", err)
			}
			if st := s.State(); st != sock.StateClosed {
				t.Errorf("State() = %v after a failed handshake", st)
			}
			if err := s.Send([]byte("plaintext?")); err == nil {
				t.Error("Send after a failed handshake succeeded")
			}
			t.Logf("%v", err)
		})
	}
}

// TestRefusedCertificateUnderTLS13: a TLS 1.3 server checks the client's
// certificate after the client has finished its handshake; its alert
// arrives with the first read, and is classified there.
func TestRefusedCertificateUnderTLS13(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pki := getPKI(t)
	sockrig.EchoStreams(t, tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{pki.Server}, ClientAuth: tls.RequireAnyClientCert}))
	raw, _ := netsock.New("tcp4", nil)
	s := tlssock.New(raw, &tls.Config{RootCAs: pki.Pool})
	defer s.Close()
	if err := s.Connect(context.Background(), "127.0.0.1", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)); err != nil {
		t.Fatal(err)
	}
	s.Send([]byte("hello"))
	_, err = s.Receive(make([]byte, 64))
	if !errors.Is(err, sock.ErrAuth) || !sock.IsPermanent(err) {
		t.Fatalf("first read after a refused certificate: %v, want sock.ErrAuth", err)
	}
	t.Log(err)
}

// TestWire: Shutdown sends nothing; Close sends one close_notify alert.
// TLS 1.2, so that the record type is visible on the wire.
func TestWire(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sockrig.EchoStreams(t, tls.NewListener(ln, serverConfig(t)))
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	base, _ := netsock.New("tcp4", nil)
	rec := &sockrig.Recorder{Socket: base}
	s := tlssock.New(rec, &tls.Config{RootCAs: getPKI(t).Pool, MaxVersion: tls.VersionTLS12})
	ctx := context.Background()
	if err := s.Connect(ctx, "127.0.0.1", port); err != nil {
		t.Fatal(err)
	}
	sockrig.EchoOnce(t, s, "hello")
	rec.Take()
	if err := sock.Shutdown(s); err != nil {
		t.Fatal(err)
	}
	if b := bytes.Join(rec.Take(), nil); len(b) != 0 {
		t.Fatalf("Shutdown sent %d bytes (% x); want nothing", len(b), b)
	}
	if err := s.Connect(ctx, "127.0.0.1", port); err != nil {
		t.Fatal(err)
	}
	sockrig.EchoOnce(t, s, "hello")
	rec.Take()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b := bytes.Join(rec.Take(), nil)
	const alert = 21
	if len(b) < 5 || b[0] != alert || int(b[3])<<8|int(b[4]) != len(b)-5 {
		t.Fatalf("Close sent % x; want exactly one alert record", b)
	}
	t.Logf("Close sent one %d-byte alert record; Shutdown sent nothing", len(b))
}

// TestHandshakeBytes measures what a reconnect costs on the wire: a full
// TLS 1.3 handshake (with the server's certificate) against one resumed
// from the session ticket (no certificate), with Go's default key exchange
// (post-quantum X25519MLKEM768 first, about 2.3 KB of key shares) and with
// X25519 alone.
func TestHandshakeBytes(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sockrig.EchoStreams(t, tls.NewListener(ln, serverConfig(t)))
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	wire := func(s sock.Socket) uint64 {
		c, _ := sock.As[sock.ByteCounter](s)
		return c.BytesSent() + c.BytesReceived()
	}
	for _, tc := range []struct {
		name   string
		curves []tls.CurveID
	}{
		{"default curves", nil},
		{"X25519 only", []tls.CurveID{tls.X25519}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, _ := netsock.New("tcp4", nil)
			s := tlssock.New(raw, &tls.Config{RootCAs: getPKI(t).Pool, CurvePreferences: tc.curves})
			defer s.Close()
			ctx := context.Background()
			if err := s.Connect(ctx, "127.0.0.1", port); err != nil {
				t.Fatal(err)
			}
			full := wire(s)
			sockrig.EchoOnce(t, s, "x") // takes the session ticket too
			if err := sock.Shutdown(s); err != nil {
				t.Fatal(err)
			}
			before := wire(s)
			if err := s.Connect(ctx, "127.0.0.1", port); err != nil {
				t.Fatal(err)
			}
			resumed := wire(s) - before
			if !s.SessionResumed() || resumed == 0 || resumed >= full {
				t.Fatalf("full handshake %d bytes, resumed %d bytes (resumed: %v); want a resumed handshake smaller than a full one",
					full, resumed, s.SessionResumed())
			}
			t.Logf("reconnect over TLS 1.3, %s: full handshake %d bytes on the wire, resumed from the ticket %d", tc.name, full, resumed)
		})
	}
}
