package lwm2mtest_test

import (
	"bytes"
	"crypto/tls"
	"net"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tether-iot/tether/coap"
	"github.com/tether-iot/tether/internal/testpki"
	"github.com/tether-iot/tether/lwm2m/content"
	"github.com/tether-iot/tether/lwm2m/lwm2mtest"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/dtlssock"
	"github.com/tether-iot/tether/sock/simnet"
	"github.com/tether-iot/tether/sock/tlssock"
)

// serverTLS is the coaps+tcp server's configuration: testpki's
// certificate (for 127.0.0.1 and 10.0.0.1 among others).
func serverTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{testpki.Get().Server}}
}

// deviceTLS is a device's: it trusts testpki's CA.
func deviceTLS() *tls.Config { return &tls.Config{RootCAs: testpki.Get().Pool} }

// simnetTCPRig serves coap+tcp (or, with Options.TLS, coaps+tcp) on a
// simulated network, inside a synctest bubble; each device is a new
// stream socket of one device host, with tlssock over it for TLS.
func simnetTCPRig(t *testing.T, opts *lwm2mtest.Options) rig {
	n := simnet.New(1)
	sh := n.AddHost("server", "10.0.0.1")
	dh := n.AddHost("device", "10.0.0.2")
	ln, err := sh.Listen("tcp", ":5683")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := lwm2mtest.NewTCPServer(ln, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	dial := func(t *testing.T) *device {
		t.Helper()
		raw, err := dh.NewSocket("tcp", nil)
		if err != nil {
			t.Fatal(err)
		}
		var s sock.Socket = raw
		if opts != nil && opts.TLS != nil {
			s = tlssock.New(raw, deviceTLS())
		}
		s.SetReceiveTimeout(-1)
		if err := s.Connect(t.Context(), "10.0.0.1", "5683"); err != nil {
			t.Fatal(err)
		}
		host, _ := sock.AssociationOf(s).LocalHost()
		port, _ := sock.AssociationOf(s).LocalPort()
		return newStreamDevice(t, s, net.JoinHostPort(host, port))
	}
	return rig{srv: srv, dial: dial, host: dh, stream: true}
}

// loopbackTCPRig serves on a real TCP socket on 127.0.0.1 through Start;
// devices dial it with net (and crypto/tls for coaps+tcp).
func loopbackTCPRig(t *testing.T, opts *lwm2mtest.Options) rig {
	srv := lwm2mtest.Start(t, opts)
	dial := func(t *testing.T) *device {
		t.Helper()
		d := &net.Dialer{Timeout: 10 * time.Second}
		var c net.Conn
		var err error
		if opts.TLS != nil {
			c, err = tls.DialWithDialer(d, "tcp4", srv.Addr().String(), deviceTLS())
		} else {
			c, err = d.Dial("tcp4", srv.Addr().String())
		}
		if err != nil {
			t.Fatal(err)
		}
		return newStreamDevice(t, streamConn{c}, c.LocalAddr().String())
	}
	return rig{srv: srv, dial: dial, stream: true}
}

func TestTCP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		exercise(t, simnetTCPRig(t, nil), false)
	})
}

func TestTLS(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		exercise(t, simnetTCPRig(t, &lwm2mtest.Options{TLS: serverTLS()}), true)
	})
}

func TestTCPLoopback(t *testing.T) {
	exercise(t, loopbackTCPRig(t, &lwm2mtest.Options{TCP: true}), false)
}

func TestTLSLoopback(t *testing.T) {
	exercise(t, loopbackTCPRig(t, &lwm2mtest.Options{TLS: serverTLS()}), true)
}

// TestStartTCP: Start with Options.TCP (or TLS) serves coap+tcp (coaps+tcp)
// on loopback at the URL it gives; a device on a coap/peer.Stream
// registers and is read.
func TestStartTCP(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   *lwm2mtest.Options
		scheme string
	}{
		{"coap+tcp", &lwm2mtest.Options{TCP: true}, "coap+tcp://"},
		{"coaps+tcp", &lwm2mtest.Options{TLS: serverTLS()}, "coaps+tcp://"},
		{"coaps+tcp, TCP said too", &lwm2mtest.Options{TCP: true, TLS: serverTLS()}, "coaps+tcp://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := lwm2mtest.Start(t, tc.opts)
			hostport, ok := strings.CutPrefix(srv.URL(), tc.scheme)
			if !ok {
				t.Fatalf("URL %q, want %s", srv.URL(), tc.scheme)
			}
			ap, err := netip.ParseAddrPort(hostport)
			if err != nil || !ap.Addr().IsLoopback() || ap.Port() == 0 {
				t.Fatalf("URL %q: %v, want a loopback address and a port", srv.URL(), err)
			}
			var c net.Conn
			if tc.opts.TLS != nil {
				c, err = tls.Dial("tcp", hostport, deviceTLS())
			} else {
				c, err = net.Dial("tcp", hostport)
			}
			if err != nil {
				t.Fatal(err)
			}
			d := newStreamDevice(t, streamConn{c}, c.LocalAddr().String())
			ctx := t.Context()
			if resp, loc := d.register(ctx, "dev-1", "1.1"); resp.Code != coap.Created || loc != "/rd/0" {
				t.Fatalf("Register: %s at %q", coap.CodeString(resp.Code), loc)
			}
			if _, err := srv.WaitRegistered(ctx, "dev-1", 0); err != nil {
				t.Fatal(err)
			}
			m, err := srv.Read(ctx, "dev-1", "/3/0/0", content.Text)
			if err != nil || m.Code != coap.Content || string(m.Payload) != "tether" {
				t.Errorf("Read /3/0/0: %s %q", codeOf(m, err), payload(m))
			}
			want := 0
			if tc.opts.TLS != nil {
				want = 1
			}
			if got := srv.Stats().Handshakes; got != want {
				t.Errorf("Handshakes = %d, want %d", got, want)
			}
		})
	}
}

// TestTCPURL: the scheme follows Options.TLS; an unspecified address is
// given as loopback's; the transports' options are refused where they do
// not belong.
func TestTCPURL(t *testing.T) {
	for _, tc := range []struct {
		name, network, addr string
		tls                 bool
		want                string
	}{
		{"loopback", "tcp4", "127.0.0.1:0", false, "coap+tcp://127.0.0.1:"},
		{"TLS", "tcp4", "127.0.0.1:0", true, "coaps+tcp://127.0.0.1:"},
		{"unspecified IPv4", "tcp4", "0.0.0.0:0", false, "coap+tcp://127.0.0.1:"},
		{"unspecified IPv6", "tcp6", "[::]:0", true, "coaps+tcp://[::1]:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen(tc.network, tc.addr)
			if err != nil {
				t.Skipf("no %s here: %v", tc.network, err)
			}
			opts := &lwm2mtest.Options{}
			if tc.tls {
				opts.TLS = serverTLS()
			}
			srv, err := lwm2mtest.NewTCPServer(ln, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			if got, want := srv.URL(), tc.want+itoa(ln.Addr().(*net.TCPAddr).Port); got != want {
				t.Errorf("URL() = %q, want %q", got, want)
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if _, err := lwm2mtest.NewTCPServer(ln, &lwm2mtest.Options{DTLS: pskConfig()}); err == nil {
			t.Error("NewTCPServer took Options.DTLS")
		}
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		for _, o := range []*lwm2mtest.Options{{TCP: true}, {TLS: serverTLS()}} {
			if _, err := lwm2mtest.NewServer(pc, o); err == nil {
				t.Errorf("NewServer took %+v", o)
			}
		}
		if _, err := lwm2mtest.NewServer(pc, &lwm2mtest.Options{DTLS: &dtlssock.Config{}, TLS: serverTLS()}); err == nil {
			t.Error("NewServer took both DTLS and TLS")
		}
	})
}

// TestTCPJunk: a connection that breaks RFC 8323 (its first frame no CSM)
// is aborted and closed, and the Server goes on serving others.
func TestTCPJunk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := simnetTCPRig(t, nil)
		raw, err := r.host.NewSocket("tcp", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		raw.SetReceiveTimeout(-1)
		if err := raw.Connect(t.Context(), "10.0.0.1", "5683"); err != nil {
			t.Fatal(err)
		}
		get, _ := coap.AppendTCP(nil, &coap.Message{Code: coap.GET, Token: []byte{1}})
		if err := raw.Send(get); err != nil {
			t.Fatal(err)
		}
		var got []byte
		buf := make([]byte, 512)
		for {
			n, err := raw.Receive(buf)
			got = append(got, buf[:n]...)
			if n == 0 || err != nil { // the server closed the connection
				break
			}
		}
		var codes []string
		for len(got) > 0 {
			var m coap.Message
			n, err := coap.DecodeTCP(got, &m, 1<<16)
			if err != nil {
				t.Fatalf("the server sent % x: %v", got, err)
			}
			codes = append(codes, coap.CodeString(m.Code))
			got = got[n:]
		}
		if strings.Join(codes, ",") != "7.01 CSM,7.05 Abort" {
			t.Errorf("the server sent %v, want its CSM and an Abort", codes)
		}
		d := r.dial(t)
		if resp, _ := d.register(t.Context(), "dev-1", "1.1"); resp.Code != coap.Created {
			t.Errorf("Register after the junk: %s", coap.CodeString(resp.Code))
		}
		if recs := r.srv.Records(""); len(recs) != 1 || !bytes.Contains([]byte(recs[0].String()), []byte("register")) {
			t.Errorf("Records %v, want the Register only", recs)
		}
	})
}
