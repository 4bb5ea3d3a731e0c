package coaprig

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"

	"github.com/tether-iot/tether/coap/client"
	"github.com/tether-iot/tether/coap/fileserver"
	"github.com/tether-iot/tether/internal/testrig"
	"github.com/tether-iot/tether/sock"
	"github.com/tether-iot/tether/sock/netsock"
)

// Serve serves dir with tether's file server, configured by opts (nil for
// the defaults), over pc and ln (either may be nil) until the test ends,
// as Run does.
func Serve(t testing.TB, dir string, opts *fileserver.Options, pc net.PacketConn, ln net.Listener) {
	t.Helper()
	srv, err := fileserver.New(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	Run(t, srv, pc, ln)
}

// Run serves srv over pc and ln (either may be nil) until the test ends.
// Then it closes the server and fails the test unless each Serve call
// returned fileserver.ErrServerClosed.
func Run(t testing.TB, srv *fileserver.Server, pc net.PacketConn, ln net.Listener) {
	t.Helper()
	errs := make(chan error, 2)
	serving := 0
	if pc != nil {
		serving++
		go func() { errs <- srv.ServeUDP(pc) }()
	}
	if ln != nil {
		serving++
		go func() { errs <- srv.ServeTCP(ln) }()
	}
	t.Cleanup(func() {
		srv.Close()
		for range serving {
			if err := <-errs; !errors.Is(err, fileserver.ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		}
	})
}

// Loopback serves dir as Serve does over UDP and TCP on 127.0.0.1, and
// returns the port of each.
func Loopback(t testing.TB, dir string, opts *fileserver.Options) (udpPort, tcpPort string) {
	t.Helper()
	srv, err := fileserver.New(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return RunLoopback(t, srv)
}

// RunLoopback serves srv as Run does over UDP and TCP on 127.0.0.1, and
// returns the port of each.
func RunLoopback(t testing.TB, srv *fileserver.Server) (udpPort, tcpPort string) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		pc.Close()
		srv.Close()
		t.Fatal(err)
	}
	Run(t, srv, pc, ln)
	return strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port), strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// ServeFile serves data as /fw.bin with the default options over UDP on
// 127.0.0.1 until the test ends, and returns its URL,
// coap://127.0.0.1:PORT/fw.bin. wrap, if not nil, wraps the socket the
// server reads and writes (Requests.Conn, a slow or hostile network).
func ServeFile(t testing.TB, data []byte, wrap func(net.PacketConn) net.PacketConn) string {
	t.Helper()
	dir := testrig.File(t, "fw.bin", data)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)
	if wrap != nil {
		pc = wrap(pc)
	}
	Serve(t, dir, nil, pc, nil)
	return "coap://127.0.0.1:" + port + "/fw.bin"
}

// Connect connects s to host:port and returns a CoAP client over it, with
// cfg: CoAP over TCP when network is "tcp", over UDP otherwise. s is
// closed when the test ends.
func Connect(t testing.TB, s sock.Socket, network, host, port string, cfg *client.Config) *client.Conn {
	t.Helper()
	t.Cleanup(func() { s.Close() })
	if err := s.Connect(context.Background(), host, port); err != nil {
		t.Fatal(err)
	}
	var (
		c   *client.Conn
		err error
	)
	if network == "tcp" {
		c, err = client.NewTCP(context.Background(), s, cfg)
	} else {
		c, err = client.NewUDP(s, cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Dial returns a CoAP client with the default configuration, over a new
// netsock socket for network ("udp" or "tcp", IPv4) connected to
// 127.0.0.1:port; the socket is closed when the test ends.
func Dial(t testing.TB, network, port string) *client.Conn {
	t.Helper()
	s, err := netsock.New(network+"4", nil)
	if err != nil {
		t.Fatal(err)
	}
	return Connect(t, s, network, "127.0.0.1", port, nil)
}
