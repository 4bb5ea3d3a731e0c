package tlssock_test

import (
	"testing"

	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/socktest"
	"github.com/tether-iot/tether/sock/tlssock"
)

// TestLayer: over raw sockets with and without each capability, the TLS
// socket has exactly the raw socket's Bind, Shutdown, association,
// counters and stickiness, and claims nothing it would refuse.
func TestLayer(t *testing.T) {
	socktest.Layer(t, func(raw sock.Socket) sock.Socket { return tlssock.New(raw, nil) })
}
