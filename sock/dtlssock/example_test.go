package dtlssock_test

import (
	"context"
	"fmt"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/dtlssock"
	"github.com/tether-iot/tether/sock/simnet"
	"github.com/tether-iot/tether/sock/socktest"
)

// A device goes offline and comes back with a new IP address: Shutdown
// keeps the DTLS session, and the next Connect restores it with no
// handshake; the server (Listen, on a simulated network here) follows the
// Connection ID to the new address.
func Example() {
	key := func([]byte) ([]byte, error) { return []byte("secret key 16 B!"), nil }
	suites := []dtlssock.CipherSuite{dtlssock.TLS_PSK_WITH_AES_128_CCM_8}

	n := simnet.New(1)
	srv := n.AddHost("server", "10.0.0.1")
	dev := n.AddHost("device", "10.0.0.2")
	pc, _ := srv.ListenPacket("udp", ":5684")
	ln, _ := dtlssock.Listen(pc, &dtlssock.Config{PSK: key, CipherSuites: suites, ConnectionIDs: true})
	defer ln.Close()
	go socktest.EchoStream(ln)

	raw, _ := dev.NewSocket("udp", nil)
	s := dtlssock.New(raw, &dtlssock.Config{PSK: key, PSKIdentity: []byte("device-1"), CipherSuites: suites})
	defer s.Close()
	echo := func(msg string) string {
		s.Send([]byte(msg))
		buf := make([]byte, 64)
		k, err := s.Receive(buf)
		if err != nil {
			return err.Error()
		}
		return string(buf[:k])
	}

	ctx := context.Background()
	if err := s.Connect(ctx, "10.0.0.1", "5684"); err != nil {
		panic(err)
	}
	fmt.Println(echo("hello"), s.SessionResumed())

	s.Shutdown()              // offline: nothing is sent, the session is kept
	dev.SetAddrs("10.0.0.77") // the device comes back elsewhere
	s.Connect(ctx, "10.0.0.1", "5684")
	local, _ := sock.AssociationOf(s).LocalHost()
	fmt.Println(echo("again"), s.SessionResumed(), local, s.FullHandshakes())
	// Output:
	// hello false
	// again true 10.0.0.77 1
}
