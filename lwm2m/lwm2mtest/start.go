package lwm2mtest

import (
	"net"
	"testing"
)

// Start starts a Server on a new socket on loopback (127.0.0.1, or ::1
// where IPv4 is missing) and closes it when the test ends (tb.Cleanup):
// the one line a test needs, as httptest.NewServer is for HTTP. The
// socket is UDP (coap, or coaps with Options.DTLS), or TCP with
// Options.TCP or Options.TLS (coap+tcp, coaps+tcp). A failure to start
// ends the test. The device under test takes the Server's URL.
func Start(tb testing.TB, opts *Options) *Server {
	tb.Helper()
	if opts != nil && (opts.TCP || opts.TLS != nil) {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			if ln, err = net.Listen("tcp6", "[::1]:0"); err != nil {
				tb.Fatalf("lwm2mtest: listening on loopback: %v", err)
			}
		}
		srv, err := NewTCPServer(ln, opts)
		if err != nil {
			ln.Close()
			tb.Fatalf("lwm2mtest: %v", err)
		}
		tb.Cleanup(func() { srv.Close() })
		return srv
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		if pc, err = net.ListenPacket("udp6", "[::1]:0"); err != nil {
			tb.Fatalf("lwm2mtest: listening on loopback: %v", err)
		}
	}
	srv, err := NewServer(pc, opts)
	if err != nil {
		pc.Close()
		tb.Fatalf("lwm2mtest: %v", err)
	}
	tb.Cleanup(func() { srv.Close() })
	return srv
}
