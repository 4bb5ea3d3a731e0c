package simnet_test

import (
	"net/netip"
	"testing"

	"github.com/tether-iot/tether/internal/testrig/sockrig"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/simnet"
	"github.com/tether-iot/tether/sock/socktest"
)

func TestConformance(t *testing.T) {
	for _, tc := range []struct{ network, host string }{
		{"udp", "10.0.0.1"}, {"udp", "fd00::1"}, {"udp", "server.sim"},
		{"tcp", "10.0.0.1"}, {"tcp", "fd00::1"}, {"tcp", "server.sim"},
	} {
		t.Run(tc.network+"/"+tc.host, func(t *testing.T) {
			socktest.Run(t, func(t *testing.T) socktest.Env {
				n := simnet.New(1)
				srv := n.AddHost("server", "10.0.0.1", "fd00::1")
				dev := n.AddHost("device", "10.0.0.2", "fd00::2")
				n.DNS().Set("server.sim", netip.MustParseAddr("10.0.0.1"))
				startEcho(t, srv, tc.network, ":7")
				return socktest.Env{
					NewSocket: func(t *testing.T) sock.Socket {
						s, err := dev.NewSocket(tc.network, nil)
						if err != nil {
							t.Fatal(err)
						}
						return s
					},
					Datagram:     tc.network == "udp",
					Host:         tc.host,
					Port:         "7",
					Unresolvable: "nowhere.sim",
				}
			})
		})
	}
}

// startEcho serves an echo peer on h until the test ends.
func startEcho(t testing.TB, h *simnet.Host, network, addr string) {
	t.Helper()
	if network == "udp" {
		for _, nw := range []string{"udp4", "udp6"} {
			pc, err := h.ListenPacket(nw, addr)
			if err != nil {
				t.Fatal(err)
			}
			sockrig.EchoPackets(t, pc)
		}
		return
	}
	for _, nw := range []string{"tcp4", "tcp6"} {
		ln, err := h.Listen(nw, addr)
		if err != nil {
			t.Fatal(err)
		}
		sockrig.EchoStreams(t, ln)
	}
}
