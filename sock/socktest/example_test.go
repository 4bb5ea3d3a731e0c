package socktest_test

import (
	"testing"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/simnet"
	"github.com/tether-iot/tether/sock/socktest"
)

// A third-party implementation runs the suite from its own tests. Here the
// socket under test is simnet's, and the echo peer runs on the same
// simulated network; a modem driver would start a peer the modem can reach
// and return its own socket from NewSocket.
func ExampleRun() {
	var t *testing.T // the *testing.T of a TestXxx function

	socktest.Run(t, func(t *testing.T) socktest.Env {
		n := simnet.New(1)
		srv := n.AddHost("server", "10.0.0.1")
		dev := n.AddHost("device", "10.0.0.2")
		pc, err := srv.ListenPacket("udp", ":7")
		if err != nil {
			t.Fatal(err)
		}
		go socktest.Echo(pc)
		t.Cleanup(func() { pc.Close() })
		return socktest.Env{
			NewSocket: func(t *testing.T) sock.Socket {
				s, err := dev.NewSocket("udp", nil)
				if err != nil {
					t.Fatal(err)
				}
				return s
			},
			Datagram: true,
			Host:     "10.0.0.1",
			Port:     "7",
		}
	})
}
