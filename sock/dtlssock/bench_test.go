package dtlssock_test

import (
	"context"
	"net"
	"strconv"
	"testing"

	"github.com/pion/dtls/v3"

	"github.com/tether-iot/tether/internal/testrig/sockrig"
	"github.com/tether-iot/tether/sock/dtlssock"
	"github.com/tether-iot/tether/sock/netsock"
)

// BenchmarkRoundTrip puts a DTLS round trip (1 KiB each way, on loopback)
// next to a plain UDP one measured in the same run, and next to pion's own
// client against the same server: what any pion-based client can reach.
//
//	go test -run '^$' -bench RoundTrip -count 10 ./sock/dtlssock > rt.txt
//	benchstat -col /impl rt.txt
func BenchmarkRoundTrip(b *testing.B) {
	msg, buf := make([]byte, 1024), make([]byte, 2048)
	loop := func(b *testing.B, send func([]byte) error, recv func([]byte) (int, error)) {
		b.ReportAllocs()
		b.SetBytes(int64(2 * len(msg)))
		for b.Loop() {
			if err := send(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := recv(buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("impl=udp", func(b *testing.B) {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		sockrig.EchoPackets(b, pc)
		s, err := netsock.New("udp4", nil)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		if err := s.Connect(context.Background(), "127.0.0.1", strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)); err != nil {
			b.Fatal(err)
		}
		loop(b, s.Send, s.Receive)
	})
	for _, suite := range []struct {
		name string
		id   dtlssock.CipherSuite
	}{
		{"ccm8", dtlssock.TLS_PSK_WITH_AES_128_CCM_8}, // LwM2M's mandatory PSK suite
		{"gcm", dtlssock.TLS_PSK_WITH_AES_128_GCM_SHA256},
	} {
		cfg := func() *dtlssock.Config {
			c := pskConfig()
			c.CipherSuites = []dtlssock.CipherSuite{suite.id}
			return c
		}
		b.Run("impl=dtlssock-"+suite.name, func(b *testing.B) {
			port := pionEcho(b, net.IPv4(127, 0, 0, 1), dtlssock.ServerOptions(cfg())...)
			raw, err := netsock.New("udp4", nil)
			if err != nil {
				b.Fatal(err)
			}
			s := dtlssock.New(raw, cfg())
			defer s.Close()
			if err := s.Connect(context.Background(), "127.0.0.1", port); err != nil {
				b.Fatal(err)
			}
			loop(b, s.Send, s.Receive)
		})
		b.Run("impl=pion-"+suite.name, func(b *testing.B) {
			port := pionEcho(b, net.IPv4(127, 0, 0, 1), dtlssock.ServerOptions(cfg())...)
			p, _ := strconv.Atoi(port)
			c, err := dtls.DialWithOptions("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p},
				dtls.WithPSK(cfg().PSK), dtls.WithPSKIdentityHint(cfg().PSKIdentity),
				dtls.WithCipherSuites(dtls.CipherSuiteID(suite.id)))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			loop(b, func(p []byte) error { _, err := c.Write(p); return err }, c.Read)
		})
	}
}
