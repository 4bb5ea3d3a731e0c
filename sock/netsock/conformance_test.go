package netsock_test

import (
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/tether-iot/tether/internal/testrig/sockrig"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/netsock"
	"github.com/tether-iot/tether/sock/sockkit"
	"github.com/tether-iot/tether/sock/socktest"
)

// echoPeer starts an echo peer on loopback for network ("udp4", "tcp6", ...)
// and returns its address; the test's clean-up stops it.
func echoPeer(t testing.TB, network string) netip.AddrPort {
	t.Helper()
	host := "127.0.0.1"
	if network[len(network)-1] == '6' {
		host = "::1"
	}
	addr := net.JoinHostPort(host, "0")
	var local net.Addr
	if network[:3] == "udp" {
		pc, err := net.ListenPacket(network, addr)
		if err != nil {
			t.Skipf("no %s loopback here: %v", network, err)
		}
		local = pc.LocalAddr()
		sockrig.EchoPackets(t, pc)
	} else {
		ln, err := net.Listen(network, addr)
		if err != nil {
			t.Skipf("no %s loopback here: %v", network, err)
		}
		local = ln.Addr()
		sockrig.EchoStreams(t, ln)
	}
	ap, err := netip.ParseAddrPort(local.String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// resolver knows "localhost" as the IPv4 and IPv6 loopback addresses, and
// nothing else, so no test ever asks a DNS server off this machine.
func resolver() *sockkit.StaticResolver {
	r := new(sockkit.StaticResolver)
	r.Set("localhost", netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"))
	return r
}

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		network, host string
	}{
		{"udp4", ""}, {"udp6", ""}, {"tcp4", ""}, {"tcp6", ""},
		// By name: RemoteHostname must be the name, RemoteHost the address.
		{"udp4", "localhost"}, {"tcp6", "localhost"},
	} {
		name := tc.network
		if tc.host != "" {
			name += "/" + tc.host
		}
		t.Run(name, func(t *testing.T) {
			socktest.Run(t, func(t *testing.T) socktest.Env {
				peer := echoPeer(t, tc.network)
				host := tc.host
				if host == "" {
					host = peer.Addr().String()
				}
				res := resolver()
				return socktest.Env{
					NewSocket: func(t *testing.T) sock.Socket {
						s, err := netsock.New(tc.network, &sock.Config{Resolver: res})
						if err != nil {
							t.Fatal(err)
						}
						return s
					},
					Datagram:     tc.network[:3] == "udp",
					Host:         host,
					Port:         strconv.Itoa(int(peer.Port())),
					Unresolvable: "no-such-host.test",
				}
			})
		})
	}
}
