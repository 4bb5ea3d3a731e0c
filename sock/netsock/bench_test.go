package netsock_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/netsock"
)

// BenchmarkRoundTrip compares a 1 KiB UDP request/response through sock with
// the same through a bare *net.UDPConn, against the same echo peer in the
// same process. The goal: sock costs at most 5% more time and no
// allocations. Compare with benchstat:
//
//	go test -run '^$' -bench RoundTrip -count 10 ./sock | tee rt.txt
func BenchmarkRoundTrip(b *testing.B) {
	peer := echoPeer(b, "udp4")
	msg, buf := make([]byte, 1024), make([]byte, 2048)

	b.Run("impl=net", func(b *testing.B) {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(peer))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.ReportAllocs()
		b.SetBytes(int64(2 * len(msg)))
		for b.Loop() {
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Read(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=sock", func(b *testing.B) {
		s := newSocket(b, "udp4", nil)
		if err := s.Connect(ctx(b), peer.Addr().String(), strconv.Itoa(int(peer.Port()))); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.SetBytes(int64(2 * len(msg)))
		for b.Loop() {
			if err := s.Send(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Receive(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

var _ sock.Socket = (*netsock.Socket)(nil)
