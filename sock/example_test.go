package sock_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/netsock"
	"github.com/tether-iot/tether/sock/sockkit"
	"github.com/tether-iot/tether/sock/socktest"
)

// startEcho starts a UDP echo peer on loopback for the examples.
func startEcho() (port string, stop func()) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go socktest.Echo(pc)
	return strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port), func() { pc.Close() }
}

func ExampleNew() {
	port, stop := startEcho()
	defer stop()

	s, err := netsock.New("udp4", nil)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	if err := s.Connect(context.Background(), "127.0.0.1", port); err != nil {
		panic(err)
	}
	if err := s.Send([]byte("ping")); err != nil {
		panic(err)
	}
	buf := make([]byte, 64)
	n, err := s.Receive(buf)
	if err != nil {
		panic(err)
	}
	fmt.Println(s.State(), string(buf[:n]))
	// Output: connected ping
}

// The scenario of the Anjay tutorial: while the network is away the socket
// is shut down, and still knows where it was connected.
func ExampleShutdown() {
	port, stop := startEcho()
	defer stop()

	s, _ := netsock.New("udp4", nil)
	defer s.Close()
	if err := s.Connect(context.Background(), "localhost", port); err != nil {
		panic(err)
	}
	if err := sock.Shutdown(s); err != nil {
		panic(err)
	}
	name, _ := sock.RemoteHostname(s)
	host, _ := sock.RemoteHost(s)
	fmt.Println(s.State(), name, host)
	fmt.Println(s.Send([]byte("x")) != nil)

	// Back online: connect to the remembered name again.
	if err := s.Connect(context.Background(), name, port); err != nil {
		panic(err)
	}
	fmt.Println(s.State())
	// Output:
	// shutdown localhost 127.0.0.1
	// true
	// connected
}

// IP address stickiness: whatever order DNS answers in, the stored endpoint
// comes first while the name still resolves to it.
func ExamplePreferredEndpoint() {
	var dns sockkit.StaticResolver
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	pe := new(sock.PreferredEndpoint)
	pe.Store(netip.AddrPortFrom(a, 5683))

	dns.Set("coap.example", b, a)
	cands, _ := sockkit.Candidates(context.Background(), &dns, "coap.example", "5683", sockkit.Policy{Sticky: pe})
	fmt.Println(cands)

	dns.Set("coap.example", b) // the node left the pool
	cands, _ = sockkit.Candidates(context.Background(), &dns, "coap.example", "5683", sockkit.Policy{Sticky: pe})
	fmt.Println(cands)
	// Output:
	// [192.0.2.1:5683 192.0.2.2:5683]
	// [192.0.2.2:5683]
}

// Layers above ask for optional capabilities through the helpers, which
// report ErrNotSupported when a socket lacks one.
func ExampleRemoteHostname() {
	var s sock.Socket = minimal{}
	_, err := sock.RemoteHostname(s)
	fmt.Println(err)
	// Output: operation not supported by this socket
}

// minimal has only the required methods.
type minimal struct{ sock.Socket }
