package sock_test

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/netsock"
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

// The scenario of the Anjay tutorial, as the README shows it: while the
// network is away the socket is shut down, and still knows where it was
// connected; back online, it connects to the same name and, through the
// caller's stickiness storage, the same address.
func ExampleShutdown() {
	port, stop := startEcho()
	defer stop()
	ctx := context.Background()

	var endpoint sock.PreferredEndpoint // keep it: stickiness outlives sockets
	s, err := netsock.New("udp", &sock.Config{Preferred: &endpoint})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	err = s.Connect(ctx, "localhost", port)
	if err != nil {
		panic(err)
	}
	err = sock.Shutdown(s)                            // offline: the association stays
	name, _ := sock.AssociationOf(s).RemoteHostname() // "localhost", as given
	fmt.Println(s.State(), name, s.Send([]byte("x")) != nil)

	err = s.Connect(ctx, name, port) // online again, same server address
	if err != nil {
		panic(err)
	}
	stored, _ := endpoint.Load()
	host, _ := sock.AssociationOf(s).RemoteHost()
	fmt.Println(s.State(), host == stored.Addr().String())
	// Output:
	// shutdown localhost true
	// connected true
}

// A capability is found with As, through any layer: here the byte
// counters of the raw socket beneath a logging layer.
func ExampleAs() {
	port, stop := startEcho()
	defer stop()

	raw, _ := netsock.New("udp4", nil)
	var s sock.Socket = logging{raw}
	defer s.Close()
	if err := s.Connect(context.Background(), "127.0.0.1", port); err != nil {
		panic(err)
	}
	s.Send([]byte("ping"))
	s.Receive(make([]byte, 64))
	if c, ok := sock.As[sock.ByteCounter](s); ok {
		fmt.Println(c.BytesSent(), c.BytesReceived())
	}
	_, direct := s.(sock.ByteCounter)
	fmt.Println(direct)
	// Output:
	// 4 4
	// false
}

// logging is a layer: it changes Send, and passes everything else on.
type logging struct{ sock.Socket }

func (l logging) Send(b []byte) error { return l.Socket.Send(b) } // a real one would log

func (l logging) Unwrap() sock.Socket { return l.Socket }

// A socket without a capability answers ErrNotSupported through the
// helpers.
func ExampleAssociationOf() {
	var s sock.Socket = minimal{}
	_, err := sock.AssociationOf(s).RemoteHostname()
	fmt.Println(err)
	// Output: operation not supported by this socket
}

// minimal has only the required methods.
type minimal struct{ sock.Socket }
