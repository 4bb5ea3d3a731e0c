package lwm2mtest_test

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/tether-iot/tether/lwm2m/lwm2mtest"
	"github.com/tether-iot/tether/sock/dtlssock"
	"github.com/tether-iot/tether/sock/simnet"
)

// TestStart: one line starts a Server on loopback that a device reaches
// by its URL, and the test's end closes it.
func TestStart(t *testing.T) {
	var srv *lwm2mtest.Server
	t.Run("test", func(t *testing.T) {
		srv = lwm2mtest.Start(t, nil)
		u := srv.URL()
		hostport, ok := strings.CutPrefix(u, "coap://")
		if !ok {
			t.Fatalf("URL %q, want coap://", u)
		}
		ap, err := netip.ParseAddrPort(hostport)
		if err != nil || !ap.Addr().IsLoopback() || ap.Port() == 0 {
			t.Fatalf("URL %q: %v, want a loopback address and a port", u, err)
		}
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ap))
		if err != nil {
			t.Fatal(err)
		}
		d := newDevice(t, udpConn{c}, c.LocalAddr().String())
		d.register(t.Context(), "dev-1", "1.1")
		if _, err := srv.WaitRegistered(t.Context(), "dev-1", 0); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := srv.Read(t.Context(), "dev-1", "/3/0/0"); !errors.Is(err, lwm2mtest.ErrClosed) {
		t.Errorf("Read after the test that started the Server ended: %v, want ErrClosed", err)
	}
}

// TestURL: the scheme follows Options.DTLS; an unspecified address is
// given as loopback's.
func TestURL(t *testing.T) {
	for _, tc := range []struct {
		name, network, addr string
		dtls                bool
		want                string // the URL without its port
	}{
		{"loopback", "udp4", "127.0.0.1:0", false, "coap://127.0.0.1:"},
		{"DTLS", "udp4", "127.0.0.1:0", true, "coaps://127.0.0.1:"},
		{"unspecified IPv4", "udp4", "0.0.0.0:0", false, "coap://127.0.0.1:"},
		{"unspecified IPv6", "udp6", "[::]:0", false, "coap://[::1]:"},
		{"IPv6 loopback", "udp6", "[::1]:0", false, "coap://[::1]:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc, err := net.ListenPacket(tc.network, tc.addr)
			if err != nil {
				t.Skipf("no %s here: %v", tc.network, err)
			}
			var opts *lwm2mtest.Options
			if tc.dtls {
				opts = &lwm2mtest.Options{DTLS: pskConfig()}
			}
			srv, err := lwm2mtest.NewServer(pc, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			port := pc.LocalAddr().(*net.UDPAddr).Port
			if got, want := srv.URL(), tc.want+itoa(port); got != want {
				t.Errorf("URL() = %q, want %q", got, want)
			}
		})
	}
	t.Run("simnet", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			pc, err := simnet.New(1).AddHost("server", "10.0.0.1").ListenPacket("udp", "10.0.0.1:5684")
			if err != nil {
				t.Fatal(err)
			}
			srv, err := lwm2mtest.NewServer(pc, &lwm2mtest.Options{DTLS: &dtlssock.Config{PSK: pskConfig().PSK}})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			if got := srv.URL(); got != "coaps://10.0.0.1:5684" {
				t.Errorf("URL() = %q, want coaps://10.0.0.1:5684", got)
			}
		})
	})
}
