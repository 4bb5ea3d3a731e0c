package dtlssock_test

import (
	"testing"
	"time"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/dtlssock"
	"github.com/tether-iot/tether/sock/simnet"
	"github.com/tether-iot/tether/sock/socktest"
)

// TestLayer: over raw sockets with and without each capability, the DTLS
// socket has exactly the raw socket's Bind, association, counters and
// stickiness, and claims nothing it would refuse.
func TestLayer(t *testing.T) {
	socktest.Layer(t, func(raw sock.Socket) sock.Socket { return dtlssock.New(raw, pskConfig()) })
}

// noShutdown is a simulated socket that cannot shut down.
type noShutdown struct {
	sock.Socket
	sock.Binder
	sock.Associator
	sock.ByteCounter
	sock.EndpointPreferrer
}

// TestConformanceOverRawWithoutShutdown: Shutdown is the DTLS socket's own
// (it keeps the session), so it must hold over a raw socket that cannot
// shut down: the session stops, the raw socket stays connected and idle.
// A blocked Receive returns within the reader's 50 ms slice (the suite
// allows a second).
func TestConformanceOverRawWithoutShutdown(t *testing.T) {
	socktest.Run(t, func(t *testing.T) socktest.Env {
		n := simnet.New(1)
		srv := n.AddHost("server", "10.0.0.1")
		dev := n.AddHost("device", "10.0.0.2")
		simnetEcho(t, srv, ":5684")
		return socktest.Env{
			NewSocket: func(t *testing.T) sock.Socket {
				s, err := dev.NewSocket("udp", nil)
				if err != nil {
					t.Fatal(err)
				}
				return dtlssock.New(noShutdown{s, s, s, s, s}, pskConfig())
			},
			Datagram: true, Host: "10.0.0.1", Port: "5684", CountsOverhead: true,
			Prompt: time.Second, // the reader's 50 ms slice, with room for a loaded machine
		}
	})
}
